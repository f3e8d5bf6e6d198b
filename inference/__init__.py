"""Qt-free core: the model contract, image loading, ONNX Runtime prediction and Grad-CAM."""
