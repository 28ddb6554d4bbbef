"""The ``.slim`` artifact: safetensors payload + JSON manifest, packed and entropy coded (issue 7; being built)."""
