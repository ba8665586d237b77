"""Part B: MNIST data, the UNets, their training loops, the judge classifier and metrics."""
