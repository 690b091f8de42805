"""Bundles: a trained classifier as files that run without sentikit (TorchScript, torch.export or ONNX),
loaded only after their hashes check out, and `sentikit predict-file` over tables of any size."""
