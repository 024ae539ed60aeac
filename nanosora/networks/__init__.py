"""The networks: the video autoencoder, the diffusion transformer and its seams, the text
encoder, the layout planner, LoRA and quantisation."""
