"""Edit quality against the synthetic renderer's ground truth and baselines (the library behind `ebgan-eval`).

pairs       the test pairs, their masks and the renderer's ground-truth swaps
methods     what is measured: trained models and the baselines, as `Method`s
scoring     every method on every region, and the targets
report      Markdown, JSON, the grid and TensorBoard summaries
classifier  the evaluation classifier that reads attributes on edited images
evaluate    `evaluate_models`: all of it for trained runs
"""
