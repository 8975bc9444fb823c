package subjects_test

import (
	"bytes"
	"context"
	"image"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/images/imagestest"
	"github.com/cachetlab/cachet/subjects"
)

// Format and size validation is images' (images_test); here: the original is kept as PNG and errors
// name the upload.
func TestDecodeKeepsPNGAndNamesTheUpload(t *testing.T) {
	l := subjects.DefaultLimits()
	for _, data := range [][]byte{imagestest.PNG(t, imagestest.Pattern(40, 30, 2)), imagestest.JPEG(t, imagestest.Pattern(30, 40, 3))} {
		ref, err := l.Decode(context.Background(), 0, cachet.Upload{Filename: "a", Data: data})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := image.Decode(bytes.NewReader(ref.PNG)); err != nil || !bytes.HasPrefix(ref.PNG, []byte("\x89PNG")) {
			t.Fatalf("stored original is not a PNG: %v", err)
		}
	}
	_, err := l.Decode(context.Background(), 3, cachet.Upload{Filename: "shoe.gif", Data: []byte("GIF89a")})
	if cachet.CodeOf(err) != cachet.CodeUnsupportedMedia || !strings.Contains(err.Error(), "image 3 (shoe.gif)") {
		t.Fatalf("Decode = %v, want unsupported media naming image 3 (shoe.gif)", err)
	}
}

func TestCheckCount(t *testing.T) {
	l := subjects.DefaultLimits()
	l.MaxImageBytes, l.MaxTotalBytes = 10, 25
	up := func(sizes ...int) []cachet.Upload {
		var out []cachet.Upload
		for _, s := range sizes {
			out = append(out, cachet.Upload{Data: make([]byte, s)})
		}
		return out
	}
	tests := []struct {
		name    string
		uploads []cachet.Upload
		want    cachet.Code
	}{
		{"one", up(5), ""},
		{"none", nil, cachet.CodeInvalidArgument},
		{"nine", up(1, 1, 1, 1, 1, 1, 1, 1, 1), cachet.CodeInvalidArgument},
		{"one too big", up(11), cachet.CodePayloadTooLarge},
		{"total too big", up(10, 10, 10), cachet.CodePayloadTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := l.CheckCount(tc.uploads)
			if (tc.want == "" && err != nil) || (tc.want != "" && cachet.CodeOf(err) != tc.want) {
				t.Fatalf("CheckCount = %v, want %q", err, tc.want)
			}
		})
	}
}
