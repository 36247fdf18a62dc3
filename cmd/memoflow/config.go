package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/memoflow/memoflow/internal/blob"
	"github.com/memoflow/memoflow/internal/chconn"
	"github.com/memoflow/memoflow/internal/embedded"
	"github.com/memoflow/memoflow/internal/httpserver"
	"github.com/memoflow/memoflow/pipeline"
	"github.com/memoflow/memoflow/schemas/chddl"
	"github.com/memoflow/memoflow/schemas/events"
	"github.com/memoflow/memoflow/stages/deliver"
	"github.com/memoflow/memoflow/stages/eventlog"
	"github.com/memoflow/memoflow/stages/forward"
	"github.com/memoflow/memoflow/stages/ingest"
	"github.com/memoflow/memoflow/stages/route"
	"github.com/memoflow/memoflow/stages/schedule"
	"github.com/memoflow/memoflow/stages/validate"
)

// Config is the whole configuration of a memoflow process. Precedence, low to
// high: defaults, the YAML file (--config), MEMOFLOW_* environment variables,
// flags. Every section validates itself.
type Config struct {
	VarDir    string                `yaml:"var_dir"`
	HTTP      HTTPConfig            `yaml:"http"`
	Log       LogConfig             `yaml:"log"`
	Pyroscope PyroscopeConfig       `yaml:"pyroscope"`
	Kafka     pipeline.KafkaConfig  `yaml:"kafka"`
	Runner    pipeline.RunnerConfig `yaml:"runner"`
	Broker    embedded.Config       `yaml:"broker"`
	// Everything below is read by the stages that need it.
	ClickHouse chconn.Config          `yaml:"clickhouse"`
	Schema     chddl.Options          `yaml:"schema"`
	EventLog   eventlog.Config        `yaml:"eventlog"`
	Pseudonym  events.PseudonymConfig `yaml:"pseudonym"`
	Ingest     ingest.Config          `yaml:"ingest"`
	Validation validate.Config        `yaml:"validate"`
	Blob       blob.Config            `yaml:"blob"`
	Deliver    deliver.Config         `yaml:"deliver"`
	Auth       AuthConfig             `yaml:"auth"`
	Schedule   schedule.Config        `yaml:"schedule"`
	Route      route.Config           `yaml:"route"`
	Forward    forward.Config         `yaml:"forward"`
}

// AuthConfig says where API tokens come from.
type AuthConfig struct {
	// TokensFile is a YAML list of {token_sha256, id, org, roles}. `memoflow
	// run` creates one with a demo sender when it does not exist.
	TokensFile string `yaml:"tokens_file"`
}

type HTTPConfig struct {
	Addr string               `yaml:"addr"`
	TLS  httpserver.TLSConfig `yaml:"tls"`
}

type LogConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type PyroscopeConfig struct {
	URL string `yaml:"url"`
}

func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.VarDir, "var-dir", "./var", "directory for local state (embedded broker data, blobs, demo files)")
	fs.StringVar(&c.HTTP.Addr, "http-addr", "127.0.0.1:8080", "address of the HTTP APIs, /metrics, /healthz and /readyz")
	fs.StringVar(&c.HTTP.TLS.CertFile, "http-tls-cert-file", "", "PEM certificate: serve HTTPS")
	fs.StringVar(&c.HTTP.TLS.KeyFile, "http-tls-key-file", "", "PEM key of --http-tls-cert-file")
	fs.StringVar(&c.HTTP.TLS.ClientCAFile, "http-tls-client-ca-file", "", "PEM CAs of client certificates: require mutual TLS (the certificate's CVR must be the token's organisation)")
	fs.StringVar(&c.Log.Level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.Log.Format, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.Pyroscope.URL, "pyroscope-url", "", "Pyroscope server URL; when set, continuous profiling is on with a per-stage tag")
	c.Kafka.RegisterFlags(fs)
	c.Runner.RegisterFlags(fs)
	c.Broker.RegisterFlags(fs)
	c.ClickHouse.RegisterFlags(fs)
	c.Schema.RegisterFlags(fs)
	c.EventLog.RegisterFlags(fs)
	c.Pseudonym.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.Validation.RegisterFlags(fs)
	c.Blob.RegisterFlags(fs)
	c.Deliver.RegisterFlags(fs)
	c.Schedule.RegisterFlags(fs)
	c.Route.RegisterFlags(fs)
	c.Forward.RegisterFlags(fs)
	fs.StringVar(&c.Auth.TokensFile, "auth-tokens-file", "", "YAML file of API token hashes and their principals (default for run: <var-dir>/tokens.yaml)")
}

func (c *Config) Validate() error {
	if c.VarDir == "" {
		return errors.New("var_dir: empty; give a directory for local state, e.g. ./var")
	}
	if _, port, ok := strings.Cut(c.HTTP.Addr, ":"); !ok || port == "" {
		return fmt.Errorf("http.addr: %q is not host:port, e.g. 127.0.0.1:8080", c.HTTP.Addr)
	}
	if err := c.HTTP.TLS.Validate(); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format: %q is not text or json", c.Log.Format)
	}
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	if err := c.Runner.Validate(); err != nil {
		return err
	}
	if err := c.Broker.Validate(); err != nil {
		return err
	}
	if err := c.ClickHouse.Validate(); err != nil {
		return err
	}
	if err := c.Ingest.Validate(); err != nil {
		return err
	}
	if err := c.Validation.Validate(); err != nil {
		return err
	}
	if err := c.Deliver.Validate(); err != nil {
		return err
	}
	if err := c.Schedule.Validate(); err != nil {
		return err
	}
	if err := c.Route.Validate(); err != nil {
		return err
	}
	if err := c.Forward.Validate(); err != nil {
		return err
	}
	return c.Blob.Validate()
}

// envPrefix names the environment variables: MEMOFLOW_ + the flag name in
// upper case with '-' as '_'.
const envPrefix = "MEMOFLOW_"

// envAllowed are MEMOFLOW_ variables read by something other than a flag.
var envAllowed = map[string]bool{
	"MEMOFLOW_TOKEN":      true, // memoflow send
	"MEMOFLOW_SHARED_DIR": true, // tests that read the MeMo samples
	"MEMOFLOW_VAR":        true, // scripts/clickhouse.sh
	"MEMOFLOW_CONFIG":     true, // same as --config
}

func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindConfig registers the configuration flags on cmd and returns the
// config that load fills.
func bindConfig(cmd *cobra.Command) *Config {
	c := &Config{}
	c.RegisterFlags(cmd.Flags())
	cmd.Flags().String("config", "", "YAML configuration file (keys as printed by `memoflow config`)")
	return c
}

// loadConfig applies the YAML file, the environment and the flags to c, in
// that order of precedence, then validates.
func loadConfig(cmd *cobra.Command, c *Config) error {
	fs := cmd.Flags()
	// The flags share memory with c, and the file is decoded into c: keep
	// the command line's values to apply them again last.
	given := map[string]string{}
	givenSlices := map[string][]string{}
	fs.Visit(func(f *pflag.Flag) {
		// A slice flag's String() is "[a,b]", and Set appends after the
		// first call: keep and replace its elements instead.
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			givenSlices[f.Name] = sv.GetSlice()
			return
		}
		given[f.Name] = f.Value.String()
	})
	path, _ := fs.GetString("config")
	if path == "" {
		path = os.Getenv("MEMOFLOW_CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return usageErr(fmt.Errorf("config file: %w", err))
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil && !errors.Is(err, errEOF) && err.Error() != "EOF" {
			return usageErr(fmt.Errorf("config file %s: %v (see `memoflow config` for the known keys)", path, err))
		}
	}
	// Environment for every flag not given on the command line.
	known := map[string]bool{}
	var envErr error
	fs.VisitAll(func(f *pflag.Flag) {
		name := envName(f.Name)
		known[name] = true
		if f.Changed || envErr != nil {
			return
		}
		if v, ok := os.LookupEnv(name); ok {
			if err := f.Value.Set(v); err != nil {
				envErr = usageErr(fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	if envErr != nil {
		return envErr
	}
	if v := os.Getenv("CLICKHOUSE_ADDR"); v != "" {
		if f := fs.Lookup("clickhouse-addr"); f != nil && !f.Changed {
			if _, set := os.LookupEnv(envName("clickhouse-addr")); !set {
				_ = f.Value.Set(v)
			}
		}
	}
	var unknown []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix) && !known[k] && !envAllowed[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return usageErr(fmt.Errorf("unknown environment variable %s; `%s --help` lists the flags, and each flag's variable is MEMOFLOW_<FLAG_NAME>", strings.Join(unknown, ", "), cmd.CommandPath()))
	}
	// Flags win over file and environment: set them again.
	var flagErr error
	fs.Visit(func(f *pflag.Flag) {
		if f.Name == "config" || flagErr != nil {
			return
		}
		var err error
		if vals, ok := givenSlices[f.Name]; ok {
			err = f.Value.(pflag.SliceValue).Replace(vals)
		} else {
			err = f.Value.Set(given[f.Name])
		}
		if err != nil {
			flagErr = usageErr(fmt.Errorf("--%s: %v", f.Name, err))
		}
	})
	if flagErr != nil {
		return flagErr
	}
	if err := c.Validate(); err != nil {
		return usageErr(fmt.Errorf("configuration: %w", err))
	}
	return nil
}

var errEOF = errors.New("EOF")

// redacted returns a copy safe to print.
func (c Config) redacted() Config {
	if c.Kafka.SASLPassword != "" {
		c.Kafka.SASLPassword = "<redacted>"
	}
	if c.ClickHouse.Password != "" {
		c.ClickHouse.Password = "<redacted>"
	}
	return c
}
