package recipientsim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func post(t *testing.T, url, uuid string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, strings.NewReader("<memo/>"))
	if uuid != "" {
		req.Header.Set("Idempotency-Key", uuid)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

func TestCounts(t *testing.T) {
	sim, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	sim.Expect("a", "b", "c")
	for _, u := range []string{"a", "b", "a"} {
		if st, body := post(t, srv.URL+PushPath("s1"), u); st != 200 || !strings.Contains(body, "COMPLETED") {
			t.Fatalf("push %s: %d %s", u, st, body)
		}
	}
	sim.SetDown("s2", true)
	if st, _ := post(t, srv.URL+PushPath("s2"), "c"); st != 503 {
		t.Fatalf("down system answered %d", st)
	}
	if st, _ := post(t, srv.URL+PushPath("s1"), ""); st != 400 {
		t.Fatalf("no idempotency key answered %d", st)
	}
	st := sim.Stats()
	if st.Delivered != 3 || st.Unique != 2 || st.DupCount != 1 || st.Duplicates[0] != "a" ||
		st.MissingCount != 1 || st.Missing[0] != "c" || st.Failed != 1 || sim.Accepted("s1") != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRates(t *testing.T) {
	for _, c := range []struct {
		cfg           Config
		failed, negOK bool
	}{
		{Config{FailureRate: 1}, true, false},
		{Config{NegativeRate: 1}, false, true},
	} {
		sim, _ := New(c.cfg)
		srv := httptest.NewServer(sim.Handler())
		st, body := post(t, srv.URL+PushPath("s"), "u")
		srv.Close()
		if c.failed && st != 503 {
			t.Fatalf("failure rate 1 answered %d", st)
		}
		if c.negOK && (st != 200 || !strings.Contains(body, `"receiptStatus":"INVALID"`)) {
			t.Fatalf("negative rate 1 answered %d %s", st, body)
		}
		if sim.Stats().Delivered != 0 {
			t.Fatal("a failed or negative push counted as delivered")
		}
	}
	if _, err := New(Config{FailureRate: 2}); err == nil {
		t.Fatal("failure rate 2 accepted")
	}
}
