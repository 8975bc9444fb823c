// Package dataset reads Cachet's training and evaluation data: Fashion-MNIST's gzip IDX files as Debian's
// dataset-fashion-mnist package installs them (DefaultDir): 60,000 training and 10,000 test items, 28×28
// bytes, light item on a 0 background. Package scene draws them into prompts' scenes.
package dataset
