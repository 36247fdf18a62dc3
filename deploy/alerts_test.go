package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	yamlv3 "gopkg.in/yaml.v3"
)

// TestDeliveryAlertsFire runs the delivery and forwarding alerts against
// made-up series with promtool's rule unit tests: each fires when it
// should and stays quiet when it should not. The annotations are left out
// of the comparison (they are prose); the expressions and labels are what
// is tested. Skipped without promtool (apt-get install prometheus).
func TestDeliveryAlertsFire(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed: the alert expressions are not evaluated")
	}
	b, err := os.ReadFile("compose/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rf map[string]any
	if err := yamlv3.Unmarshal(b, &rf); err != nil {
		t.Fatal(err)
	}
	for _, g := range rf["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			delete(r.(map[string]any), "annotations")
		}
	}
	stripped, err := yamlv3.Marshal(rf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), stripped, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yml"), []byte(deliveryAlertTests), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", "alerts_test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// Series values: "_x5 1x30" is absent for 5 minutes, then 1 for 31.
const deliveryAlertTests = `
rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  # A system's first configuration error is a new series at 1: increase()
  # cannot see it, the "appeared within 10m" arm must.
  - interval: 1m
    input_series:
      - series: 'memoflow_deliver_transport_config_errors_total{system="s1",protocol="SFTP",code="DELIVER_SFTP_HOST_KEY_MISMATCH",instance="deliver-1:8080",job="memoflow"}'
        values: '_x5 1x40'
      - series: 'memoflow_deliver_transport_config_errors_total{system="s2",protocol="SMTP",code="DELIVER_SMIME_CERT_EXPIRED",instance="deliver-1:8080",job="memoflow"}'
        values: '1+1x45'
    alert_rule_test:
      - eval_time: 7m
        alertname: MemoflowTransportConfigErrors
        exp_alerts:
          - exp_labels: {severity: critical, system: s1, protocol: SFTP, code: DELIVER_SFTP_HOST_KEY_MISMATCH}
          - exp_labels: {severity: critical, system: s2, protocol: SMTP, code: DELIVER_SMIME_CERT_EXPIRED}
      # s1 had one error 25 minutes ago and none since: resolved.
      - eval_time: 30m
        alertname: MemoflowTransportConfigErrors
        exp_alerts:
          - exp_labels: {severity: critical, system: s2, protocol: SMTP, code: DELIVER_SMIME_CERT_EXPIRED}

  - interval: 1m
    input_series:
      - series: 'memoflow_deliver_sftp_receipt_files_total{outcome="relayed",instance="pull-api-1:8080",job="memoflow"}'
        values: '0+10x60'
      - series: 'memoflow_deliver_sftp_receipt_files_total{outcome="invalid",instance="pull-api-1:8080",job="memoflow"}'
        values: '0x20 1x40'
    alert_rule_test:
      - eval_time: 15m
        alertname: MemoflowSFTPReceiptFilesInvalid
        exp_alerts: []
      - eval_time: 25m
        alertname: MemoflowSFTPReceiptFilesInvalid
        exp_alerts:
          - exp_labels: {severity: warning}

  - interval: 1m
    input_series:
      - series: 'memoflow_forward_outcomes_total{outcome="forwarded",instance="forward-1:8080",job="memoflow"}'
        values: '0+5x120'
      - series: 'memoflow_forward_outcomes_total{outcome="given_up",instance="forward-1:8080",job="memoflow"}'
        values: '0x30 2x90'
      - series: 'memoflow_forward_outcomes_total{outcome="rescheduled",instance="forward-1:8080",job="memoflow"}'
        values: '0+1x120'
    alert_rule_test:
      - eval_time: 20m
        alertname: MemoflowForwardFailures
        exp_alerts: []
      - eval_time: 40m
        alertname: MemoflowForwardFailures
        exp_alerts:
          - exp_labels: {severity: warning, outcome: given_up}
      # Retried for 40 minutes: still pending (for: 1h).
      - eval_time: 40m
        alertname: MemoflowForwardPickupRetrying
        exp_alerts: []
      - eval_time: 80m
        alertname: MemoflowForwardPickupRetrying
        exp_alerts:
          - exp_labels: {severity: warning}
`
