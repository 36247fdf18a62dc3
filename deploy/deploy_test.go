// Package deploy holds memoflow's production deployment (compose/, k8s/,
// grafana/, Dockerfile) and the checks that keep it true to the code:
//
//   - the compose file loads with compose-go (the loader of `docker compose`,
//     schema included), names only tagged images and defined variables;
//   - both kustomizations build with kustomize's own library (krusty) and
//     every object decodes strictly into the Kubernetes API Go types
//     (k8s.io/api; unknown fields fail). kubeconform needs schemas from the
//     network, which this machine has not: this is the offline equivalent.
//     KEDA and Prometheus Operator objects decode strictly into the subset of
//     their CRDs this deployment uses;
//   - every MEMOFLOW_* variable, --flag and config key the deployment sets is
//     one the memoflow binary has (its help and `memoflow config` are asked),
//     and every stage it runs is in the binary's stage table, with KEDA
//     watching that stage's group and input topics;
//   - Prometheus scrapes every memoflow service, the alert rules parse (and
//     pass promtool when it is installed), and every memoflow_* metric the
//     dashboards and alerts use exists in the Go sources.
package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	yamlv3 "gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/memoflow/memoflow/internal/auth"
	"github.com/memoflow/memoflow/schemas/chddl"
	"github.com/memoflow/memoflow/schemas/events"
)

// ---- the memoflow binary -----------------------------------------------------

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// memoflow builds the binary once per test run: the flags, config keys and
// stages the deployment may use are the ones it has.
func memoflow(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "memoflow-deploy-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "memoflow")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/memoflow")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/memoflow: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// run runs the binary with only env in its environment (hermetic: no
// MEMOFLOW_* of the machine running the test leaks in).
func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(memoflow(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("memoflow %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), err
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]map[string]bool{}
	reFlag    = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)`)
)

// flagsOf returns the flags of the subcommand that args (a command line as
// a deployment writes it) runs, from its --help.
func flagsOf(t *testing.T, args []string) map[string]bool {
	t.Helper()
	var path []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			break
		}
		path = append(path, a)
	}
	key := strings.Join(path, " ")
	helpMu.Lock()
	defer helpMu.Unlock()
	if fs, ok := helpCache[key]; ok {
		return fs
	}
	out, err := run(t, nil, append(append([]string{}, path...), "--help")...)
	if err != nil {
		t.Fatalf("%v (does the deployment run a command the binary has?)", err)
	}
	fs := map[string]bool{}
	for _, m := range reFlag.FindAllStringSubmatch(out, -1) {
		fs[m[1]] = true
	}
	if !fs["help"] || len(fs) < 3 {
		t.Fatalf("memoflow %s --help lists no flags:\n%s", key, out)
	}
	helpCache[key] = fs
	return fs
}

func envName(flag string) string {
	return "MEMOFLOW_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// checkCommandLine fails for every --flag in args and every MEMOFLOW_*
// name in env that the command does not have.
func checkCommandLine(t *testing.T, where string, args []string, env []string) {
	t.Helper()
	flags := flagsOf(t, args)
	for _, a := range args {
		if name, ok := strings.CutPrefix(a, "--"); ok {
			name, _, _ = strings.Cut(name, "=")
			if !flags[name] {
				t.Errorf("%s: memoflow %s has no flag --%s", where, strings.Join(args, " "), name)
			}
		}
	}
	byEnv := map[string]bool{}
	for f := range flags {
		byEnv[envName(f)] = true
	}
	for _, e := range env {
		if strings.HasPrefix(e, "MEMOFLOW_") && !byEnv[e] {
			t.Errorf("%s: %s is not a flag of memoflow %s (memoflow refuses unknown MEMOFLOW_* variables)", where, e, strings.Join(args[:min(2, len(args))], " "))
		}
	}
}

// stageTable is the binary's stage table (memoflow topics list --json).
type stageInfo struct {
	Name   string   `json:"name"`
	Group  string   `json:"group"`
	Inputs []string `json:"inputs"`
}

var (
	tableOnce sync.Once
	table     map[string]stageInfo
	tableErr  error
)

func stages(t *testing.T) map[string]stageInfo {
	t.Helper()
	tableOnce.Do(func() {
		out, err := run(t, nil, "topics", "list", "--json")
		if err != nil {
			tableErr = err
			return
		}
		var v struct {
			Stages []stageInfo `json:"stages"`
		}
		if tableErr = json.Unmarshal([]byte(out), &v); tableErr != nil {
			return
		}
		table = map[string]stageInfo{}
		for _, s := range v.Stages {
			table[s.Name] = s
		}
	})
	if tableErr != nil {
		t.Fatal(tableErr)
	}
	return table
}

// ---- (a) docker compose ----------------------------------------------------

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir, err := filepath.Abs("compose")
	if err != nil {
		t.Fatal(err)
	}
	// Only .env feeds interpolation: the machine's environment must not
	// make an undefined variable look defined.
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir), cli.WithEnvFiles(), cli.WithDotEnv, cli.WithName("memoflow"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func dotEnv(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("compose/.env")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf(".env line %q is not KEY=VALUE", l)
		}
		m[k] = v
	}
	return m
}

// memoflowServices are the compose services running the memoflow image.
func memoflowServices(t *testing.T, p *types.Project) map[string]types.ServiceConfig {
	t.Helper()
	img := dotEnv(t)["MF_IMAGE"]
	out := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		if s.Image == img {
			out[name] = s
		}
	}
	if len(out) == 0 {
		t.Fatalf("no service runs %s", img)
	}
	return out
}

func envKeys(m types.MappingWithEquals) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

var reVar = regexp.MustCompile(`\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

func TestComposeVariablesDefined(t *testing.T) {
	b, err := os.ReadFile("compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	env := dotEnv(t)
	for _, m := range reVar.FindAllStringSubmatch(string(b), -1) {
		name, rest := m[2], m[3]
		if m[1] == "$" {
			continue // $$: a literal $ for the container's shell
		}
		if name == "" {
			name = m[4]
		}
		// ${X:-default} and ${X-default} are defined by their default.
		if strings.HasPrefix(rest, ":-") || strings.HasPrefix(rest, "-") {
			continue
		}
		if _, ok := env[name]; !ok {
			t.Errorf("docker-compose.yml uses $%s, which compose/.env does not define", name)
		}
	}
}

func TestComposeImagesTagged(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		img := s.Image
		if img == "" {
			t.Errorf("service %s names no image", name)
			continue
		}
		if strings.Contains(img, "@sha256:") {
			continue
		}
		ref := img[strings.LastIndex(img, "/")+1:]
		_, tag, ok := strings.Cut(ref, ":")
		if !ok || tag == "" || tag == "latest" {
			t.Errorf("service %s: image %q has no explicit tag", name, img)
		}
	}
}

func TestComposeTopology(t *testing.T) {
	p := loadCompose(t)
	brokers := 0
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "apache/kafka:4.") {
			continue
		}
		brokers++
		env := s.Environment
		for k, want := range map[string]string{
			"KAFKA_PROCESS_ROLES": "broker,controller", "KAFKA_DEFAULT_REPLICATION_FACTOR": "3",
			"KAFKA_MIN_INSYNC_REPLICAS": "2", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "3",
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "2", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
		} {
			if v := env[k]; v == nil || *v != want {
				t.Errorf("%s: %s=%v, want %s", name, k, v, want)
			}
		}
		if v := env["CLUSTER_ID"]; v == nil || *v != dotEnv(t)["KAFKA_CLUSTER_ID"] {
			t.Errorf("%s: CLUSTER_ID is not the one of .env", name)
		}
	}
	if brokers != 3 {
		t.Errorf("%d Kafka brokers, want 3", brokers)
	}
	var keepers, replicas []string
	for name, s := range p.Services {
		switch {
		case strings.HasPrefix(s.Image, "clickhouse/clickhouse-keeper:25."):
			keepers = append(keepers, name)
		case strings.HasPrefix(s.Image, "clickhouse/clickhouse-server:25."):
			replicas = append(replicas, name)
		}
	}
	if len(keepers) != 3 || len(replicas) < 2 {
		t.Errorf("keepers %v, ClickHouse replicas %v: want 3 keepers and at least 2 replicas", keepers, replicas)
	}
	// The cluster config names every replica and keeper the compose runs.
	cfg, err := os.ReadFile("compose/clickhouse/config.d/memoflow-cluster.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(keepers, replicas...) {
		if !strings.Contains(string(cfg), "<host>"+n+"</host>") {
			t.Errorf("memoflow-cluster.xml does not name %s", n)
		}
	}
	for _, n := range []string{"minio", "prometheus", "grafana", "pyroscope"} {
		if _, ok := p.Services[n]; !ok {
			t.Errorf("no service %s", n)
		}
	}
}

func TestComposeMemoflowServices(t *testing.T) {
	p := loadCompose(t)
	svcs := memoflowServices(t, p)
	table := stages(t)
	deployed := map[string]int{}
	replicaIDs := map[string]string{}
	names := make([]string, 0, len(svcs))
	for n := range svcs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		s := svcs[name]
		args := []string(s.Command)
		if len(args) == 0 {
			t.Errorf("%s: no command", name)
			continue
		}
		keys := envKeys(s.Environment)
		checkCommandLine(t, "compose service "+name, args, keys)
		if args[0] == "sim" {
			continue // a test tool (the recipient simulator), not a stage
		}
		// Only MEMOFLOW_* configure memoflow: anything else is a typo.
		for _, k := range keys {
			if !strings.HasPrefix(k, "MEMOFLOW_") {
				t.Errorf("%s: %s is not a MEMOFLOW_* setting", name, k)
			}
		}
		if args[0] == "stage" {
			if len(args) < 2 {
				t.Errorf("%s: stage without a name", name)
				continue
			}
			if _, ok := table[args[1]]; !ok {
				t.Errorf("%s runs stage %q, which the binary does not have (stages: %v)", name, args[1], mapKeys(table))
			}
			deployed[args[1]]++
		}
		id := s.Environment["MEMOFLOW_REPLICA_ID"]
		if id == nil || *id == "" {
			t.Errorf("%s: MEMOFLOW_REPLICA_ID is not set; it must be unique and stable per replica", name)
		} else if other, dup := replicaIDs[*id]; dup {
			t.Errorf("%s and %s share MEMOFLOW_REPLICA_ID %s", name, other, *id)
		} else {
			replicaIDs[*id] = name
		}
		// The values must be valid too: memoflow config validates them,
		// with each secret path pointing at the file compose mounts there.
		hostFile := map[string]string{}
		for _, sc := range s.Secrets {
			if def, ok := p.Secrets[sc.Source]; ok {
				hostFile[secretPath(sc)] = def.File
			}
		}
		var env []string
		for _, k := range keys {
			v := *s.Environment[k]
			if f, ok := hostFile[v]; ok {
				v = f
			}
			env = append(env, k+"="+v)
		}
		if _, err := run(t, env, "config"); err != nil {
			t.Errorf("%s: its settings do not validate: %v", name, err)
		}
		// Every secret file a MEMOFLOW_*_FILE names is mounted.
		for _, k := range keys {
			if !strings.HasSuffix(k, "_FILE") {
				continue
			}
			path := *s.Environment[k]
			if !slices.ContainsFunc(s.Secrets, func(sc types.ServiceSecretConfig) bool { return secretPath(sc) == path }) {
				t.Errorf("%s: %s=%s is not a mounted secret", name, k, path)
			}
		}
		if s.Environment["MEMOFLOW_PYROSCOPE_URL"] == nil {
			t.Errorf("%s: MEMOFLOW_PYROSCOPE_URL is not set", name)
		}
	}
	for n := range table {
		if deployed[n] == 0 {
			t.Errorf("stage %s is in the binary but no compose service runs it", n)
		}
	}
	if deployed["ingest"] < 2 {
		t.Errorf("ingest runs %d times, want 2", deployed["ingest"])
	}
	for name, sc := range p.Secrets {
		if _, err := os.Stat(sc.File); err != nil {
			t.Errorf("secret %s: %v", name, err)
		}
	}
}

func secretPath(sc types.ServiceSecretConfig) string {
	if sc.Target != "" {
		if strings.HasPrefix(sc.Target, "/") {
			return sc.Target
		}
		return "/run/secrets/" + sc.Target
	}
	return "/run/secrets/" + sc.Source
}

func mapKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// The committed development secrets must fit together: memoflow and
// ClickHouse agree on the passwords, the token file and the pseudonym key
// load with memoflow's own loaders.
func TestComposeSecretsConsistent(t *testing.T) {
	users, err := os.ReadFile("compose/clickhouse/users.d/memoflow-users.xml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"clickhouse_password", "clickhouse_grafana_password"} {
		pw, err := os.ReadFile("compose/secrets/" + f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(bytes.TrimRight(pw, "\r\n"))
		if !strings.Contains(string(users), "<password_sha256_hex>"+hex.EncodeToString(sum[:])+"</password_sha256_hex>") {
			t.Errorf("users.d/memoflow-users.xml has no user with the password of secrets/%s (run secrets/generate.sh)", f)
		}
	}
	store := auth.NewMemStore()
	if n, err := auth.LoadFile("compose/secrets/api-tokens.yaml", store); err != nil || n == 0 {
		t.Errorf("api-tokens.yaml: %d entries, %v", n, err)
	}
	tok, err := os.ReadFile("compose/secrets/sender.token")
	if err != nil {
		t.Fatal(err)
	}
	tokens, _ := os.ReadFile("compose/secrets/api-tokens.yaml")
	if !strings.Contains(string(tokens), auth.HashToken(strings.TrimSpace(string(tok)))) {
		t.Error("secrets/sender.token is not in api-tokens.yaml (run secrets/generate.sh)")
	}
	if _, err := (events.PseudonymConfig{KeyFile: "compose/secrets/pseudonym.keys"}).Load(); err != nil {
		t.Errorf("pseudonym.keys: %v", err)
	}
}

// ---- (b) Kubernetes --------------------------------------------------------

// object is one object of a kustomize build.
type object struct {
	apiVersion, kind, name string
	yaml                   []byte
}

func build(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var out []object
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, object{r.GetApiVersion(), r.GetKind(), r.GetName(), y})
	}
	return out
}

// KEDA and Prometheus Operator objects: the fields of their CRDs this
// deployment uses. Strict decoding makes a misspelt or misplaced field fail.
type (
	scaledObject struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Metadata   objectMeta     `json:"metadata"`
		Spec       scaledObjSpec  `json:"spec"`
		Status     map[string]any `json:"status,omitempty"`
	}
	objectMeta struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	scaledObjSpec struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type              string            `json:"type"`
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	}
	triggerAuthentication struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   objectMeta `json:"metadata"`
		Spec       struct {
			SecretTargetRef []struct {
				Parameter string `json:"parameter"`
				Name      string `json:"name"`
				Key       string `json:"key"`
			} `json:"secretTargetRef"`
		} `json:"spec"`
	}
	podMonitor struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   objectMeta `json:"metadata"`
		Spec       struct {
			Selector            metaLabelSelector `json:"selector"`
			PodMetricsEndpoints []struct {
				Port      string `json:"port"`
				Path      string `json:"path"`
				Interval  string `json:"interval"`
				Scheme    string `json:"scheme,omitempty"`
				TLSConfig *struct {
					InsecureSkipVerify bool `json:"insecureSkipVerify"`
				} `json:"tlsConfig,omitempty"`
				Relabelings []struct {
					SourceLabels []string `json:"sourceLabels,omitempty"`
					TargetLabel  string   `json:"targetLabel"`
					Replacement  *string  `json:"replacement,omitempty"`
					Regex        string   `json:"regex,omitempty"`
					Action       string   `json:"action,omitempty"`
				} `json:"relabelings,omitempty"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	metaLabelSelector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	prometheusRule struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   objectMeta `json:"metadata"`
		Spec       ruleFile   `json:"spec"`
	}
)

// ruleFile is a Prometheus rule file (and a PrometheusRule's spec).
type ruleFile struct {
	Groups []struct {
		Name  string `json:"name" yaml:"name"`
		Rules []struct {
			Alert       string            `json:"alert" yaml:"alert"`
			Expr        string            `json:"expr" yaml:"expr"`
			For         string            `json:"for,omitempty" yaml:"for,omitempty"`
			Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
		} `json:"rules" yaml:"rules"`
	} `json:"groups" yaml:"groups"`
}

// decoded is a build, decoded strictly, by kind.
type decoded struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
	configMaps  map[string]*corev1.ConfigMap
	scaled      []*scaledObject
	triggerAuth map[string]*triggerAuthentication
	rules       []*prometheusRule
	podMonitors []*podMonitor
}

func decode(t *testing.T, objs []object) decoded {
	t.Helper()
	d := decoded{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, triggerAuth: map[string]*triggerAuthentication{}}
	strict := func(o object, v any) {
		t.Helper()
		if err := yaml.UnmarshalStrict(o.yaml, v); err != nil {
			t.Errorf("%s %s does not decode strictly into %T: %v", o.kind, o.name, v, err)
		}
	}
	for _, o := range objs {
		switch o.apiVersion + " " + o.kind {
		case "apps/v1 Deployment":
			v := &appsv1.Deployment{}
			strict(o, v)
			d.deployments[o.name] = v
		case "v1 Service":
			v := &corev1.Service{}
			strict(o, v)
			d.services[o.name] = v
		case "v1 ConfigMap":
			v := &corev1.ConfigMap{}
			strict(o, v)
			d.configMaps[o.name] = v
		case "v1 Namespace":
			strict(o, &corev1.Namespace{})
		case "v1 ServiceAccount":
			strict(o, &corev1.ServiceAccount{})
		case "policy/v1 PodDisruptionBudget":
			v := &policyv1.PodDisruptionBudget{}
			strict(o, v)
			d.pdbs = append(d.pdbs, v)
		case "autoscaling/v2 HorizontalPodAutoscaler":
			v := &autoscalingv2.HorizontalPodAutoscaler{}
			strict(o, v)
			d.hpas = append(d.hpas, v)
		case "keda.sh/v1alpha1 ScaledObject":
			v := &scaledObject{}
			strict(o, v)
			d.scaled = append(d.scaled, v)
		case "keda.sh/v1alpha1 TriggerAuthentication":
			v := &triggerAuthentication{}
			strict(o, v)
			d.triggerAuth[o.name] = v
		case "monitoring.coreos.com/v1 PrometheusRule":
			v := &prometheusRule{}
			strict(o, v)
			d.rules = append(d.rules, v)
		case "monitoring.coreos.com/v1 PodMonitor":
			v := &podMonitor{}
			strict(o, v)
			d.podMonitors = append(d.podMonitors, v)
		default:
			t.Errorf("%s %s %s: a kind this test does not check; add it", o.apiVersion, o.kind, o.name)
		}
	}
	return d
}

// secretKeys are the Secrets create-secrets.sh makes, with their keys.
func secretKeys(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("k8s/create-secrets.sh")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	re := regexp.MustCompile(`(?m)^\s*apply (memoflow-[a-z0-9-]+)((?: --from-file=[a-z0-9.-]+=\S+)+)`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		for _, kv := range regexp.MustCompile(`--from-file=([a-z0-9.-]+)=`).FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(out[m[1]], kv[1]) {
				out[m[1]] = append(out[m[1]], kv[1])
			}
		}
	}
	if len(out) < 3 {
		t.Fatalf("create-secrets.sh: found only %v", out)
	}
	return out
}

func TestKubernetesBase(t *testing.T) { checkKustomization(t, "k8s/base", false) }

func TestKubernetesProduction(t *testing.T) { checkKustomization(t, "k8s/overlays/production", true) }

func checkKustomization(t *testing.T, dir string, production bool) {
	d := decode(t, build(t, dir))
	table := stages(t)
	secrets := secretKeys(t)

	// The config every pod reads: known keys, valid values.
	var cm *corev1.ConfigMap
	for name, c := range d.configMaps {
		if strings.HasPrefix(name, "memoflow-config") {
			cm = c
		}
	}
	if cm == nil || cm.Data["memoflow.yaml"] == "" {
		t.Fatal("no ConfigMap memoflow-config with memoflow.yaml")
	}
	// memoflow config checks that secret files exist: point the paths
	// under /etc/memoflow/secrets at stand-ins.
	tmp := t.TempDir()
	text := cm.Data["memoflow.yaml"]
	for _, m := range regexp.MustCompile(`/etc/memoflow/secrets/\S+`).FindAllString(text, -1) {
		f := filepath.Join(tmp, strings.TrimPrefix(m, "/etc/memoflow/secrets/"))
		os.MkdirAll(filepath.Dir(f), 0o700)
		os.WriteFile(f, []byte("stand-in"), 0o600)
	}
	text = strings.ReplaceAll(text, "/etc/memoflow/secrets/", tmp+"/")
	cfgFile := filepath.Join(tmp, "memoflow.yaml")
	if err := os.WriteFile(cfgFile, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, nil, "config", "--config", cfgFile); err != nil {
		t.Fatalf("the ConfigMap's memoflow.yaml is not a valid memoflow config: %v", err)
	}
	var cfg struct {
		Kafka struct {
			Brokers          string `yaml:"brokers"`
			TopicPartitions  int    `yaml:"topic_partitions"`
			TLSCAFile        string `yaml:"tls_ca_file"`
			SASLPasswordFile string `yaml:"sasl_password_file"`
			SASLMechanism    string `yaml:"sasl_mechanism"`
		} `yaml:"kafka"`
		ClickHouse struct {
			PasswordFile string `yaml:"password_file"`
		} `yaml:"clickhouse"`
		Pseudonym struct {
			KeyFile string `yaml:"key_file"`
		} `yaml:"pseudonym"`
		Auth struct {
			TokensFile string `yaml:"tokens_file"`
		} `yaml:"auth"`
		Blob struct {
			S3 struct {
				SecretKeyFile string `yaml:"secret_key_file"`
			} `yaml:"s3"`
		} `yaml:"blob"`
	}
	if err := yamlv3.Unmarshal([]byte(cm.Data["memoflow.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	if production && (cfg.Kafka.TLSCAFile == "" || cfg.Kafka.SASLMechanism == "") {
		t.Error("production config: Kafka without TLS and SASL")
	}
	// Which stages need which secret file of the shared config (from
	// cmd/memoflow/stage_*.go: who opens ClickHouse, who loads tokens).
	// Every stage gets the pseudonym key, the blob key and the Kafka
	// credentials.
	usesClickHouse := []string{"eventlog", "eventquery", "receipts", "receipts-api"}
	servesAPI := []string{"ingest", "eventquery", "receipts-api"}
	all := func(string) bool { return true }
	needs := map[string]func(stage string) bool{
		cfg.Pseudonym.KeyFile:       all,
		cfg.Blob.S3.SecretKeyFile:   all,
		cfg.Kafka.TLSCAFile:         all,
		cfg.Kafka.SASLPasswordFile:  all,
		cfg.ClickHouse.PasswordFile: func(s string) bool { return slices.Contains(usesClickHouse, s) },
		cfg.Auth.TokensFile:         func(s string) bool { return slices.Contains(servesAPI, s) },
	}
	delete(needs, "")

	deployed := map[string]string{} // stage -> deployment
	for name, dep := range d.deployments {
		spec := dep.Spec.Template.Spec
		if len(spec.Containers) != 1 || spec.Containers[0].Name != "memoflow" {
			t.Errorf("%s: want one container named memoflow", name)
			continue
		}
		c := spec.Containers[0]
		where := "deployment " + name
		var env []string
		for _, e := range c.Env {
			env = append(env, e.Name)
		}
		checkCommandLine(t, where, c.Args, env)
		if len(c.Args) < 2 || c.Args[0] != "stage" {
			t.Errorf("%s: args %v, want stage NAME", name, c.Args)
			continue
		}
		stage := c.Args[1]
		if _, ok := table[stage]; !ok {
			t.Errorf("%s runs stage %q, which the binary does not have", name, stage)
		}
		deployed[stage] = name
		if !strings.HasPrefix(c.Image, "ghcr.io/memoflow/memoflow:") {
			t.Errorf("%s: image %q", name, c.Image)
		}
		// The replica id is the pod name.
		rid := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "MEMOFLOW_REPLICA_ID" })
		if rid < 0 || c.Env[rid].ValueFrom == nil || c.Env[rid].ValueFrom.FieldRef == nil || c.Env[rid].ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("%s: MEMOFLOW_REPLICA_ID must come from the pod name (downward API)", name)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: liveness probe is not GET /healthz", name)
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: readiness probe is not GET /readyz", name)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: needs cpu and memory requests and a memory limit", name)
		}
		if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: does not run as non-root", name)
		}
		// Volumes: every mount has a volume; every volume's Secret or
		// ConfigMap exists.
		vols := map[string]corev1.Volume{}
		for _, v := range spec.Volumes {
			vols[v.Name] = v
			switch {
			case v.Secret != nil:
				if _, ok := secrets[v.Secret.SecretName]; !ok {
					t.Errorf("%s: volume %s mounts Secret %s, which create-secrets.sh does not make", name, v.Name, v.Secret.SecretName)
				}
			case v.ConfigMap != nil:
				if _, ok := d.configMaps[v.ConfigMap.Name]; !ok {
					t.Errorf("%s: volume %s mounts ConfigMap %s, which the build does not have", name, v.Name, v.ConfigMap.Name)
				}
			}
		}
		for _, m := range c.VolumeMounts {
			if _, ok := vols[m.Name]; !ok {
				t.Errorf("%s: mount %s has no volume", name, m.Name)
			}
		}
		// Every secret file the config or the environment names for this
		// stage is there.
		for _, e := range c.Env {
			if strings.HasSuffix(e.Name, "_FILE") && e.ValueFrom == nil && !fileMounted(e.Value, c.VolumeMounts, vols, secrets) {
				t.Errorf("%s: %s=%s, which no Secret mount of this pod provides", name, e.Name, e.Value)
			}
		}
		for path, need := range needs {
			if !need(stage) {
				continue
			}
			if !fileMounted(path, c.VolumeMounts, vols, secrets) {
				t.Errorf("%s: the config names %s, which no Secret mount of this pod provides", name, path)
			}
		}
		// A PodDisruptionBudget covers it.
		if !slices.ContainsFunc(d.pdbs, func(p *policyv1.PodDisruptionBudget) bool {
			return p.Spec.Selector != nil && matches(p.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
		}) {
			t.Errorf("%s: no PodDisruptionBudget selects it", name)
		}
	}
	for s := range table {
		if deployed[s] == "" {
			t.Errorf("stage %s is in the binary but has no Deployment", s)
		}
	}

	// KEDA: every consuming stage scales on its own group's lag of its own
	// input topics, reading Kafka where the stages do.
	scaledStages := map[string]bool{}
	for _, so := range d.scaled {
		dep := d.deployments[so.Spec.ScaleTargetRef.Name]
		if dep == nil {
			t.Errorf("ScaledObject %s targets %s, which is not a Deployment here", so.Metadata.Name, so.Spec.ScaleTargetRef.Name)
			continue
		}
		stage := dep.Spec.Template.Spec.Containers[0].Args[1]
		info := table[stage]
		scaledStages[stage] = true
		var topics []string
		for _, tr := range so.Spec.Triggers {
			if tr.Type != "kafka" {
				t.Errorf("%s: trigger %s, want kafka", so.Metadata.Name, tr.Type)
				continue
			}
			if g := tr.Metadata["consumerGroup"]; g != info.Group {
				t.Errorf("%s: consumerGroup %q, the stage's group is %q", so.Metadata.Name, g, info.Group)
			}
			if b := tr.Metadata["bootstrapServers"]; b != cfg.Kafka.Brokers {
				t.Errorf("%s: bootstrapServers %q, the stages use %q", so.Metadata.Name, b, cfg.Kafka.Brokers)
			}
			if _, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil {
				t.Errorf("%s: lagThreshold %q is not a number", so.Metadata.Name, tr.Metadata["lagThreshold"])
			}
			if production {
				if tr.AuthenticationRef == nil || d.triggerAuth[tr.AuthenticationRef.Name] == nil {
					t.Errorf("%s: no TriggerAuthentication for the TLS/SASL listener", so.Metadata.Name)
				}
				if tr.Metadata["tls"] != "enable" || tr.Metadata["sasl"] == "" {
					t.Errorf("%s: tls/sasl not set for the production listener", so.Metadata.Name)
				}
			}
			topics = append(topics, tr.Metadata["topic"])
		}
		sort.Strings(topics)
		inputs := append([]string(nil), info.Inputs...)
		sort.Strings(inputs)
		if !slices.Equal(topics, inputs) {
			t.Errorf("%s: triggers on topics %v, the stage reads %v", so.Metadata.Name, topics, inputs)
		}
		if mx := so.Spec.MaxReplicaCount; mx == nil || int(*mx) > cfg.Kafka.TopicPartitions {
			t.Errorf("%s: maxReplicaCount %v above the %d partitions (idle members)", so.Metadata.Name, mx, cfg.Kafka.TopicPartitions)
		}
		for _, p := range d.pdbs {
			if p.Spec.Selector != nil && matches(p.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) && p.Spec.MinAvailable != nil {
				if mn := so.Spec.MinReplicaCount; mn == nil || int(*mn) <= p.Spec.MinAvailable.IntValue() {
					t.Errorf("%s: minReplicaCount %v leaves no room under PodDisruptionBudget minAvailable %d (a node drain would block)", so.Metadata.Name, mn, p.Spec.MinAvailable.IntValue())
				}
			}
		}
	}
	for _, ta := range d.triggerAuth {
		for _, r := range ta.Spec.SecretTargetRef {
			if !slices.Contains(secrets[r.Name], r.Key) {
				t.Errorf("TriggerAuthentication %s: Secret %s key %s is not made by create-secrets.sh", ta.Metadata.Name, r.Name, r.Key)
			}
		}
	}
	for s, info := range table {
		if len(info.Inputs) > 0 && !scaledStages[s] {
			t.Errorf("stage %s consumes %v but no ScaledObject scales it", s, info.Inputs)
		}
		if len(info.Inputs) == 0 && deployed[s] != "" && !slices.ContainsFunc(d.hpas, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			return h.Spec.ScaleTargetRef.Name == deployed[s]
		}) {
			t.Errorf("API stage %s has no HorizontalPodAutoscaler", s)
		}
	}

	if production {
		// Every pod is scraped once, with the scheme it serves.
		for name, dep := range d.deployments {
			labels := dep.Spec.Template.Labels
			tls := slices.ContainsFunc(dep.Spec.Template.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "MEMOFLOW_HTTP_TLS_CERT_FILE" })
			n := 0
			for _, pm := range d.podMonitors {
				if !matches(pm.Spec.Selector.MatchLabels, labels) {
					continue
				}
				n++
				for _, ep := range pm.Spec.PodMetricsEndpoints {
					if (ep.Scheme == "https") != tls {
						t.Errorf("%s serves TLS=%v but PodMonitor %s scrapes it with scheme %q", name, tls, pm.Metadata.Name, ep.Scheme)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s is selected by %d PodMonitors, want 1", name, n)
			}
		}
		want := readRules(t, "compose/prometheus/alerts.yml")
		if len(d.rules) != 1 {
			t.Fatalf("production: %d PrometheusRules, want 1", len(d.rules))
		}
		got, _ := json.Marshal(d.rules[0].Spec)
		exp, _ := json.Marshal(want)
		if !bytes.Equal(got, exp) {
			t.Error("the PrometheusRule's groups differ from compose/prometheus/alerts.yml: keep them the same")
		}
	}
}

// fileMounted reports whether path is provided by a mount of a Secret that
// has the file's key (or an item mapping to it).
func fileMounted(path string, mounts []corev1.VolumeMount, vols map[string]corev1.Volume, secrets map[string][]string) bool {
	for _, m := range mounts {
		rel, ok := strings.CutPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		v := vols[m.Name]
		if v.Secret == nil {
			continue
		}
		if len(v.Secret.Items) > 0 {
			for _, it := range v.Secret.Items {
				if it.Path == rel && slices.Contains(secrets[v.Secret.SecretName], it.Key) {
					return true
				}
			}
			continue
		}
		if slices.Contains(secrets[v.Secret.SecretName], rel) {
			return true
		}
	}
	return false
}

func matches(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ---- (d) Prometheus and Grafana ------------------------------------------

// promConfig is the part of Prometheus' configuration deploy/compose uses,
// decoded strictly.
type promConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `yaml:"source_labels"`
			Regex        string   `yaml:"regex"`
			TargetLabel  string   `yaml:"target_label"`
			Replacement  string   `yaml:"replacement"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

func readStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readRules(t *testing.T, path string) ruleFile {
	t.Helper()
	var rf ruleFile
	readStrict(t, path, &rf)
	return rf
}

func TestPrometheusScrapesEveryService(t *testing.T) {
	var pc promConfig
	readStrict(t, "compose/prometheus/prometheus.yml", &pc)
	p := loadCompose(t)
	targets := map[string]bool{}
	for _, sc := range pc.ScrapeConfigs {
		if sc.JobName != "memoflow" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = true
			}
		}
	}
	for name, s := range memoflowServices(t, p) {
		if s.Restart == "no" || len(s.Command) > 0 && s.Command[0] == "sim" {
			continue // one-shot jobs (topics apply) and the simulator have nothing to scrape
		}
		if !targets[name+":8080"] {
			t.Errorf("job memoflow does not scrape %s:8080", name)
		}
		delete(targets, name+":8080")
	}
	for tg := range targets {
		t.Errorf("job memoflow scrapes %s, which is no memoflow service", tg)
	}
	// The rule file is mounted where the config says.
	for _, rf := range pc.RuleFiles {
		mounted := slices.ContainsFunc(p.Services["prometheus"].Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == rf })
		if !mounted {
			t.Errorf("rule file %s is not mounted into prometheus", rf)
		}
	}
	readRules(t, "compose/prometheus/alerts.yml")

	// promtool, when installed, checks what this test cannot: PromQL.
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed: PromQL not checked (apt-get install prometheus provides it)")
		return
	}
	if out, err := exec.Command(promtool, "check", "rules", "compose/prometheus/alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	dir := t.TempDir()
	b, _ := os.ReadFile("compose/prometheus/prometheus.yml")
	rules, _ := os.ReadFile("compose/prometheus/alerts.yml")
	os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o644)
	b = bytes.ReplaceAll(b, []byte("/etc/prometheus/alerts.yml"), []byte(filepath.Join(dir, "alerts.yml")))
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), b, 0o644)
	if out, err := exec.Command(promtool, "check", "config", filepath.Join(dir, "prometheus.yml")).CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
}

// metricNames are the metric names memoflow's Go code defines: every
// composite literal with Namespace/Subsystem/Name string fields (the
// prometheus *Opts), plus franz-go's kprom metrics under the namespace
// app.go gives them.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	var kpromNS []string
	root := ".."
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			switch de.Name() {
			case ".git", "var", "testdata", "node_modules", "deploy":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil // another engineer's file in the middle of an edit
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				parts := map[string]string{}
				for _, e := range n.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, ok := kv.Key.(*ast.Ident)
					if !ok {
						continue
					}
					if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						parts[k.Name] = v
					}
				}
				if parts["Name"] != "" {
					fq := prometheus.BuildFQName(parts["Namespace"], parts["Subsystem"], parts["Name"])
					names[fq] = true
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewMetrics" {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "kprom" && len(n.Args) > 0 {
						if lit, ok := n.Args[0].(*ast.BasicLit); ok {
							ns, _ := strconv.Unquote(lit.Value)
							kpromNS = append(kpromNS, ns)
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kpromNS) == 0 {
		t.Fatal("no kprom.NewMetrics(\"...\") in the sources: where do the memoflow_kafka_* metrics come from now?")
	}
	for _, ns := range kpromNS {
		reg := &recorder{}
		m := kprom.NewMetrics(ns, kprom.Registerer(reg), kprom.WithClientLabel())
		cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"), kgo.WithHooks(m))
		if err != nil {
			t.Fatal(err)
		}
		cl.Close()
		for _, n := range reg.names() {
			names[n] = true
		}
	}
	return names
}

// recorder is a Registerer that remembers the names of what is registered.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.cs = append(r.cs, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return true }

var reFQName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *recorder) names() []string {
	ch := make(chan *prometheus.Desc, 1000)
	for _, c := range r.cs {
		c.Describe(ch)
	}
	close(ch)
	var out []string
	for d := range ch {
		if m := reFQName.FindStringSubmatch(d.String()); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

var reMetric = regexp.MustCompile(`\bmemoflow_[a-zA-Z0-9_]+`)

// checkMetrics fails for every memoflow_* name in text that the code does
// not define (histogram series: _bucket, _sum, _count of a defined name).
func checkMetrics(t *testing.T, where, text string, defined map[string]bool) int {
	t.Helper()
	n := 0
	for _, m := range reMetric.FindAllString(text, -1) {
		n++
		if defined[m] {
			continue
		}
		base := m
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suf)
		}
		if !defined[base] {
			t.Errorf("%s uses %s, which no memoflow code defines", where, m)
		}
	}
	return n
}

func TestDashboardsAndAlertsUseRealMetrics(t *testing.T) {
	defined := metricNames(t)
	for _, must := range []string{"memoflow_stage_records_in_total", "memoflow_consumer_lag_records", "memoflow_kafka_produce_bytes_total"} {
		if !defined[must] {
			t.Fatalf("the metric scan did not find %s; found %v", must, mapKeys(defined))
		}
	}
	dss := provisionedDatasources(t)
	files, _ := filepath.Glob("grafana/dashboards/*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	uids := map[string]string{}
	used := 0 // memoflow_* expressions over all dashboards (some read ClickHouse only)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			UID    string            `json:"uid"`
			Title  string            `json:"title"`
			Panels []json.RawMessage `json:"panels"`
		}
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("%s is not valid JSON: %v", f, err)
		}
		if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
			t.Errorf("%s: needs uid, title and panels", f)
		}
		if other, dup := uids[dash.UID]; dup {
			t.Errorf("%s and %s share uid %s", f, other, dash.UID)
		}
		uids[dash.UID] = f
		// Every expression and every data source reference.
		var walk func(v any)
		exprs := 0
		walk = func(v any) {
			switch v := v.(type) {
			case map[string]any:
				for k, x := range v {
					if s, ok := x.(string); ok && (k == "expr" || k == "query" || k == "definition") {
						exprs += checkMetrics(t, f, s, defined)
					}
					if k == "datasource" {
						if ds, ok := x.(map[string]any); ok {
							if uid, _ := ds["uid"].(string); !strings.HasPrefix(uid, "$") && !dss[uid] {
								t.Errorf("%s refers to data source uid %q, which is not provisioned", f, uid)
							}
						}
					}
					walk(x)
				}
			case []any:
				for _, x := range v {
					walk(x)
				}
			}
		}
		var all any
		_ = json.Unmarshal(b, &all)
		walk(all)
		used += exprs
	}
	if used == 0 {
		t.Error("no dashboard uses a memoflow_* metric")
	}
	b, err := os.ReadFile("compose/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if checkMetrics(t, "alerts.yml", string(b), defined) == 0 {
		t.Error("alerts.yml uses no memoflow_* metric")
	}
}

// provisionedDatasources are the uids Grafana's provisioning creates.
func provisionedDatasources(t *testing.T) map[string]bool {
	t.Helper()
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name           string         `yaml:"name"`
			UID            string         `yaml:"uid"`
			Type           string         `yaml:"type"`
			Access         string         `yaml:"access"`
			URL            string         `yaml:"url"`
			IsDefault      bool           `yaml:"isDefault"`
			JSONData       map[string]any `yaml:"jsonData"`
			SecureJSONData map[string]any `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	readStrict(t, "compose/grafana/provisioning/datasources/datasources.yml", &ds)
	out := map[string]bool{}
	kinds := map[string]bool{}
	for _, d := range ds.Datasources {
		out[d.UID] = true
		kinds[d.Type] = true
	}
	for _, want := range []string{"prometheus", "grafana-clickhouse-datasource", "grafana-pyroscope-datasource"} {
		if !kinds[want] {
			t.Errorf("no %s data source provisioned", want)
		}
	}
	var dp struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Name            string `yaml:"name"`
			Folder          string `yaml:"folder"`
			Type            string `yaml:"type"`
			DisableDeletion bool   `yaml:"disableDeletion"`
			AllowUIUpdates  bool   `yaml:"allowUiUpdates"`
			Options         struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readStrict(t, "compose/grafana/provisioning/dashboards/dashboards.yml", &dp)
	p := loadCompose(t)
	for _, pr := range dp.Providers {
		if !slices.ContainsFunc(p.Services["grafana"].Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == pr.Options.Path }) {
			t.Errorf("dashboard provider %s reads %s, which is not mounted into grafana", pr.Name, pr.Options.Path)
		}
	}
	return out
}

// ---- ClickHouse cluster schema ---------------------------------------------

// The cluster variant of the schema is selected by the config key
// schema.cluster (chddl.Options.Cluster), naming a cluster of the servers'
// remote_servers. schemas/chddl refuses it until it creates Replicated
// engines; until then the deployments must not set it (the eventlog stage
// would not start), and once chddl accepts it they must, with the cluster
// name of deploy/compose's remote_servers. docs/operations.md has the
// procedure.
func TestClickHouseClusterVariant(t *testing.T) {
	xml, err := os.ReadFile("compose/clickhouse/config.d/memoflow-cluster.xml")
	if err != nil {
		t.Fatal(err)
	}
	const cluster = "memoflow"
	if !strings.Contains(string(xml), "<"+cluster+">") || !strings.Contains(string(xml), "<cluster>"+cluster+"</cluster>") {
		t.Fatalf("memoflow-cluster.xml does not define remote_servers cluster %q with its macro", cluster)
	}
	supported := chddl.Options{Cluster: cluster}.Validate() == nil
	var set []string
	for _, f := range []string{"k8s/base/memoflow.yaml", "k8s/overlays/production/memoflow.yaml"} {
		var c struct {
			Schema struct {
				Cluster string `yaml:"cluster"`
			} `yaml:"schema"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yamlv3.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		if c.Schema.Cluster != "" {
			set = append(set, f)
		}
		if supported && f == "k8s/overlays/production/memoflow.yaml" && c.Schema.Cluster != cluster {
			t.Errorf("schemas/chddl supports ON CLUSTER now: set schema.cluster: %s in %s (docs/operations.md, \"ClickHouse cluster schema\")", cluster, f)
		}
	}
	if !supported {
		if len(set) > 0 {
			t.Errorf("%v set schema.cluster, which schemas/chddl refuses: the eventlog stage would not start", set)
		}
		t.Logf("schemas/chddl does not support the cluster variant yet (%v): the deployments run the single-node schema", chddl.Options{Cluster: cluster}.Validate())
	}
}
