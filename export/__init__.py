"""Turn trained Keras and PyTorch classifiers into self-describing, Grad-CAM-ready ONNX models."""
