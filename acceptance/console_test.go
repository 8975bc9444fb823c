package acceptance_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// TestConsole drives the web console in a real browser against the real binary with the shipped weights
// and an API key: upload a subject, generate with it, see and download the images; classify two images;
// create, fill and build a collection; read the reports; and the generate page at a phone's width. No
// request may answer 5xx and the browser may log no error.
func TestConsole(t *testing.T) {
	bin, services := buildBinary(t), sharedServices(t)
	srv := startServer(t, bin, append(services, "--auth", "keys")...)
	key := makeKey(t, bin, services[1], "--tenant", "console")
	base := "http://" + srv.addr
	shots := *screenshots
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	example := func(name string) string { return filepath.Join(repoRoot(t), "docs", "examples", name) }

	b := newBrowser(t, 1280, 900)
	b.do(t, "open the console and enter the key", time.Minute,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.ID("api-key")),
		chromedp.SendKeys(chromedp.ID("api-key"), key+kb.Enter), // the keyboard alone signs in
		chromedp.WaitVisible(chromedp.CSS(`#app[data-ready="true"]`)),
	)

	began := time.Now()
	b.do(t, "upload a subject", 2*time.Minute,
		chromedp.Click(chromedp.ID("nav-subjects")),
		chromedp.WaitVisible(chromedp.ID("subject-form")),
		chromedp.SendKeys(chromedp.ID("subject-name"), "console-coat"),
		choose("#subject-class", "coat"),
		chromedp.SetUploadFiles(chromedp.ID("subject-files"), []string{example("coat.png"), example("coat2.png")}),
		waitCount("#subject-previews img", 2),
		chromedp.Click(chromedp.ID("subject-upload")),
		chromedp.WaitVisible(chromedp.CSS(`li.subject[data-status="ready"]`)),
		waitCount(`li.subject[data-status="ready"] img`, 2), // the reference thumbnails, fetched with the key
		waitLoaded(`li.subject[data-status="ready"] img`),
	)
	subjectID := get(t, b, "the subject's id", chromedp.AttributeValue(chromedp.CSS(`li.subject[data-status="ready"]`), "data-id")).Value
	b.screenshot(t, shots, "subjects")

	b.expectRefusal("/v1/generate")
	b.do(t, "a prompt the grammar refuses shows the server's message inline", time.Minute,
		chromedp.Click(chromedp.ID("nav-generate")),
		chromedp.WaitVisible(chromedp.ID("prompt")),
		setValue("#prompt", ""),
		chromedp.SendKeys(chromedp.ID("prompt"), "a purple coat"),
		chromedp.Click(chromedp.ID("gen-submit")),
		chromedp.WaitVisible(chromedp.ID("prompt-error")),
	)
	promptError := get(t, b, "the prompt's error", chromedp.Text(chromedp.ID("prompt-error")))
	if !strings.Contains(promptError, "purple") {
		t.Errorf("the prompt error says %q; want the server's message naming the unknown word", promptError)
	}
	b.do(t, "generate with the subject", 2*time.Minute,
		choose("#b-size", "small"), choose("#b-class", "coat"), choose("#b-position", "left"),
		waitFor(`document.querySelector("#prompt").value === "a small coat on the left"`), // the builder writes the prompt
		choose("#gen-subject", subjectID),
		setValue("#gen-count", "4"),
		chromedp.Click(chromedp.ID("gen-submit")),
		waitCount("#gen-images figure.gen-image img", 4),
		chromedp.WaitVisible(chromedp.ID("gen-chart")),
	)
	b.do(t, "download an image", time.Minute, chromedp.Click(chromedp.CSS("#gen-images a.download")))
	files := b.waitDownloads(t, 1, 30*time.Second)
	took := time.Since(began)
	t.Logf("upload → personalized generate → download: %.1f s (target < 60 s)", took.Seconds())
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if img, err := png.Decode(bytes.NewReader(data)); err != nil || img.Bounds().Dx() != 32 || img.Bounds().Dy() != 32 {
		t.Errorf("the downloaded file is not the model's 32×32 PNG: %v", err)
	}
	b.screenshot(t, shots, "generate")

	b.do(t, "classify two images with the built-in classes", 2*time.Minute,
		chromedp.Click(chromedp.ID("nav-classify")),
		chromedp.WaitVisible(chromedp.ID("classify-drop")),
		chromedp.SetUploadFiles(chromedp.ID("classify-files"), []string{example("bag.png"), example("sneaker.png")}),
		choose("#classify-collection", ""),
		chromedp.Click(chromedp.ID("classify-submit")),
		waitCount(".classify-result", 2),
	)
	firstLabels := get(t, b, "the top labels", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll(".classify-result")].map(r => r.querySelector(".label-score").textContent)`))
	for i, want := range []string{"bag", "sneaker"} {
		if i >= len(firstLabels) || !strings.Contains(firstLabels[i], want) {
			t.Errorf("image %d's top label row reads %q; want %s", i, firstLabels, want)
		}
	}
	b.screenshot(t, shots, "classify")

	b.do(t, "create, fill and build a collection", 3*time.Minute,
		chromedp.Click(chromedp.ID("nav-collections")),
		chromedp.WaitVisible(chromedp.ID("collection-form")),
		chromedp.SendKeys(chromedp.ID("collection-name"), "console-closet"),
		chromedp.SendKeys(chromedp.ID("collection-labels"), "coat, bag, sneaker"),
		chromedp.Click(chromedp.ID("collection-create")),
		chromedp.Click(chromedp.CSS(`li.collection button.open`)),
		chromedp.WaitVisible(chromedp.ID("collection-detail")),
		choose("#sample-label", "coat"),
		chromedp.SetUploadFiles(chromedp.ID("sample-files"), []string{example("coat.png"), example("coat2.png")}),
		chromedp.Click(chromedp.ID("sample-add")),
		waitText("#collection-detail", "2 samples"),
		choose("#sample-label", "bag"),
		chromedp.SetUploadFiles(chromedp.ID("sample-files"), []string{example("bag.png"), example("bag2.png")}),
		chromedp.Click(chromedp.ID("sample-add")),
		waitText("#collection-detail", "4 samples"),
		choose("#build-method", "tip-adapter"),
		chromedp.Click(chromedp.ID("build-submit")),
		waitText("#model-summary", "tip-adapter"),
	)
	summary := get(t, b, "the model summary", chromedp.Text(chromedp.ID("model-summary")))
	b.screenshot(t, shots, "collections")

	b.do(t, "the reports", time.Minute,
		chromedp.Click(chromedp.ID("nav-reports")),
		waitCount("#reports img", 1),
		waitLoaded("#reports img"),
	)
	b.screenshot(t, shots, "reports")

	b.do(t, "a second subject, its similar subjects, and deleting it after confirming", 2*time.Minute,
		chromedp.Click(chromedp.ID("nav-subjects")),
		chromedp.SendKeys(chromedp.ID("subject-name"), "console-bag"),
		chromedp.SetUploadFiles(chromedp.ID("subject-files"), []string{example("bag.png")}),
		chromedp.Click(chromedp.ID("subject-upload")),
		waitCount(`li.subject[data-status="ready"]`, 2),
		chromedp.Click(chromedp.CSS(`li.subject[data-id="`+subjectID+`"] button.similar`)),
		waitText(`li.subject[data-id="`+subjectID+`"] .similar-out`, "console-bag"),
		chromedp.Click(chromedp.CSS(`li.subject[data-id="`+subjectID+`"] button.delete`)),
		chromedp.WaitVisible(chromedp.ID("confirm-yes")),
		chromedp.Click(chromedp.ID("confirm-yes")),
		waitFor(`!document.querySelector('li.subject[data-id="`+subjectID+`"]')`),
	)

	phone := newBrowser(t, 390, 844)
	phone.do(t, "the generate page at a phone's width", time.Minute,
		chromedp.Navigate(base+"/#/generate"),
		chromedp.WaitVisible(chromedp.ID("api-key")),
		chromedp.SendKeys(chromedp.ID("api-key"), key+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`#app[data-ready="true"]`)),
	)
	if get(t, phone, "overflow", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`)) {
		t.Error("the generate page scrolls sideways at 390 px")
	}
	phone.screenshot(t, shots, "phone")

	for _, s := range []*browserSession{b, phone} {
		if p := s.problemList(); len(p) > 0 {
			t.Errorf("the browser saw problems:\n%s", strings.Join(p, "\n"))
		}
	}
	t.Logf("console: %d responses; the collection's model: %q", b.responses, summary)
}
