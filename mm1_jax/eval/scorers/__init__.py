"""Each benchmark's official scorer, one module per benchmark family, read from the benchmark's own evaluation code.

Every module names the file its rules were read from; `convention` arguments name the harnesses (lmms-eval,
VLMEvalKit) where they score differently, and the default is always the official scorer."""
