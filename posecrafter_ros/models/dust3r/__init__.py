"""DUSt3R (naver/dust3r), state-dict compatible with the released checkpoints.

config.py          named / tiny configs, constructor strings parsed as data
model.py           ViT encoder, twin cross-attending decoders, loading (`load_dust3r`)
rope.py, heads.py  2D RoPE; DPT and linear point-map heads
preprocessing.py   the official image resize/crop/normalisation and its pixel maps
inference.py       pairwise inference over the symmetric complete graph
alignment.py       global alignment (PointCloudOptimizer) and the two-view path
geometry.py        registration, quaternions, focal estimation, PnP
parity.py          `posecrafter-parity` checker for official-code fixtures
"""
