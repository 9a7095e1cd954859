"""Phase 4, Deployment: export (ONNX, TorchScript, TFLite) and a model server (FastAPI or Flask)."""
