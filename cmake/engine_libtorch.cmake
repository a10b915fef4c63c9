# The LibTorch engine (filled in by its engine module).
