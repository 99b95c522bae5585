"""From a checkpoint to something fast to run: ONNX export with its precision ladder (FP32,
FP16, INT8), TensorRT engines, and the backends that run each artifact. Builds on `core`."""
