"""Configuration: the typed cell schema, the Hydra composition that fills it, and what a
request of each task is. (The Hydra tree itself is data: conf/ in the repo, bench/conf in a
wheel.)"""
