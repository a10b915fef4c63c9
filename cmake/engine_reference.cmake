# The float64 ONNX reference engine (filled in by its engine module).
