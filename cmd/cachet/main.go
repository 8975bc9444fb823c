// Command cachet is Cachet's one binary: the API server and every command-line job. It only wires:
// flags and environment become one cachet.Config, which is passed to the packages that do the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cachetlab/cachet"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd, err := newRootCmd().ExecuteContextC(ctx)
	stop()
	if err != nil {
		// One line, no stack trace: the error already names the component and the fix.
		fmt.Fprintln(os.Stderr, oneLine(flagError(cmd, err)))
		os.Exit(1)
	}
}

// oneLine renders err as the single line the CLI prints (drivers such as pgx put newlines in theirs).
func oneLine(err error) string {
	return "cachet: " + strings.Join(strings.Fields(err.Error()), " ")
}

// fieldAnnotation on a flag names the config field it sets when the two names differ (--ema sets ema_decay).
const fieldAnnotation = "cachet_field"

// flagError turns a domain error about a config field into one about the flag of cmd that sets it: the
// libraries name fields, the user typed flags.
func flagError(cmd *cobra.Command, err error) error {
	var e *cachet.Error
	if cmd == nil || !errors.As(err, &e) || e.Field == "" {
		return err
	}
	var flag *pflag.Flag
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == strings.ReplaceAll(e.Field, "_", "-") || slices.Contains(f.Annotations[fieldAnnotation], e.Field) {
			flag = f
		}
	})
	if flag == nil {
		return err
	}
	return &cachet.Error{Code: e.Code, Message: "--" + flag.Name + strings.TrimPrefix(e.Message, e.Field), Err: e.Err}
}

func newRootCmd() *cobra.Command {
	var cf configFlags
	root := &cobra.Command{
		Use:           "cachet",
		Short:         "Personalized generation and training-free classification on cached diffusion-transformer features",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd.Flags()); err != nil {
				return err
			}
			return cf.setupLogging()
		},
	}
	cf.register(root.PersistentFlags())
	root.AddCommand(newServeCmd(&cf), newWorkerCmd(&cf), newMigrateCmd(&cf), newVersionCmd(), newTrainCmd(&cf), newGenerateCmd(&cf), newBenchCmd(&cf))
	root.AddCommand(newConvertCmd(&cf))
	root.AddCommand(newEvalCmd(&cf), newCalibrateCmd(&cf))
	root.AddCommand(newClassifyCmd(&cf))
	root.AddCommand(newExtractCmd(&cf), newKeysCmd(&cf))
	return root
}

// applyEnv gives every flag not set on the command line the value of its CACHET_* variable, if any
// (--database-url ← CACHET_DATABASE_URL).
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := envName(f.Name)
		if provisioningVars[name] {
			return
		}
		if v, ok := os.LookupEnv(name); ok {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("environment variable %s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}

// provisioningVars are the build scripts' own variables (scripts/env.sh, Makefile): they are set in every
// `make` and `./cachet` environment, so the flags whose names they would mirror (--cache) take none.
var provisioningVars = map[string]bool{
	"CACHET_CACHE": true, "CACHET_ROOTFS": true, "CACHET_STATE": true, "CACHET_TOOLS": true, "CACHET_BIND": true,
}

func envName(flag string) string {
	return "CACHET_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}
