"""Generation: a request, its timeline of windows, the sampler and the pipeline that fills
them with frames."""
