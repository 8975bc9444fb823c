// Package eval measures and reports generation and classification quality.
//
// It holds the pure-Go half of Cachet's evaluation protocol (DESIGN.md, "Step
// caching" → Evaluation protocol): image fidelity against a reference run
// (PSNR, SSIM), distribution distance between feature sets (the Fréchet
// distance behind FID), classification accuracy per attribute, and the
// artefacts a benchmark leaves behind (markdown and JSON tables, image grids
// with their prompts, a speed-up-versus-quality Pareto plot).
//
// Images are flat row-major grayscale float32 slices, normally in [0, 1].
// Nothing here touches the model or libtorch, so the package builds and tests
// on machines without a GPU and can be reused by every command that reports.
package eval
