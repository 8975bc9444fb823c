package scene

// NumClasses is the number of Fashion-MNIST labels.
const NumClasses = 10

// ClassNames are the prompt words for the Fashion-MNIST labels (index = label). Each is one word, so that
// a class is one token for the text encoder ("t-shirt" keeps its hyphen, "ankle boot" becomes "boot").
var ClassNames = [NumClasses]string{
	"t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot",
}
