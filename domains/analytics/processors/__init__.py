"""One faust app per analytics product, each runnable as its own worker."""
