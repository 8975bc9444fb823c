package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
	"github.com/cachetlab/cachet/subjects"
)

func newExtractCmd(cf *configFlags) *cobra.Command {
	var out, adaptersFile string
	cmd := &cobra.Command{
		Use:   "extract IMAGE...",
		Short: "Extract a subject's reference feature cache from 1–8 PNG/JPEG images into a file",
		Long: `Runs the DreamCache extraction pass (one null-condition forward at a small t_ref per reference, keeping
the input hidden states of the cached blocks) over the images, converted to the model's canvas as the API
converts uploads, and writes the references' caches joined along tokens as fp16 safetensors. The file is
bound to the weights that made it; use it with 'cachet generate --subject FILE'.`,
		Example: `  cachet extract --weights weights/base.safetensors --out coat.safetensors coat1.png coat2.jpg`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExtract(cmd, cf.cfg, args, out, adaptersFile)
		},
	}
	cmd.Flags().StringVar(&out, "out", "subject.safetensors", "output cache file")
	cmd.Flags().StringVar(&adaptersFile, "adapters", "", "adapter weights whose t_ref the cache must match (default: adapters.safetensors next to --weights)")
	return cmd
}

func runExtract(cmd *cobra.Command, cfg cachet.Config, paths []string, out, adaptersFile string) error {
	if !strings.HasSuffix(out, ".safetensors") {
		return cachet.Errorf(cachet.CodeInvalidArgument, "--out %q must name a .safetensors file", out)
	}
	limits := subjects.DefaultLimits()
	uploads := make([]cachet.Upload, len(paths))
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return cachet.Wrap(cachet.CodeInvalidArgument, err, "reading %s: %v", p, err)
		}
		uploads[i] = cachet.Upload{Filename: filepath.Base(p), Data: data}
	}
	if err := limits.CheckCount(uploads); err != nil {
		return err
	}
	images := make([][]float32, len(uploads))
	for i, u := range uploads {
		ref, err := limits.Decode(cmd.Context(), i, u)
		if err != nil {
			return err
		}
		images[i] = scene.ModelUnits(ref.Canvas[:])
	}
	if err := model.SetNumThreads(cfg.TorchThreads); err != nil {
		return err
	}
	ctx := cmd.Context()
	w := model.NewWorker(false)
	defer w.Close()
	m, release, err := model.LoadOn(ctx, w, cfg.Weights)
	if err != nil {
		return err
	}
	defer release()
	if adaptersFile == "" {
		adaptersFile = adaptersPath(cfg.Weights)
	}
	p, err := newPersonalization(ctx, w, m, cfg.Weights, adaptersFile, generate.Options{MaxImages: 1})
	if err != nil {
		return err
	}
	defer p.close()

	// One forward per reference, timed on its own: the latency a subject upload pays per image.
	parts := make([]*featurecache.Features, len(images))
	for i, img := range images {
		start := time.Now()
		f, err := p.extract.Extract(ctx, [][]float32{img})
		if err != nil {
			return err
		}
		parts[i] = f[0]
		fmt.Fprintf(cmd.ErrOrStderr(), "reference %d (%s): %.1f ms\n", i, paths[i], float64(time.Since(start).Microseconds())/1000)
	}
	all, err := featurecache.Concat(parts)
	if err != nil {
		return err
	}
	data, err := featurecache.Encode(all)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: model %s, blocks %v, t_ref %g, %d view(s) per reference, %d tokens × %d, %d bytes (fp16; %d decoded)\n",
		out, all.Model, all.Blocks, all.TRef, all.Views, all.Tokens, all.Width, len(data), all.Bytes())
	return nil
}
