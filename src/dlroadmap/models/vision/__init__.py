"""Vision models: convolution written out (im2col), LeNet-5, AlexNet, VGG, ResNet, EfficientNet."""
