"""The function's names and defaults, light enough for the task modules to import at start-up."""

from __future__ import annotations

import sys

FUNCTION_NAME = "cruddur-post-confirmation"
HANDLER = "cruddur_post_confirmation.lambda_handler"
# Byte code is specific to a Python version and only that version compiles it: building for the
# interpreter's own version is what puts byte code in the zip. Lambda offers several Python 3s.
DEFAULT_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
DEFAULT_ARCHITECTURE = "x86_64"
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> the wheel tags' name
# Cognito waits 5 s for the trigger: a longer function timeout would only run on unseen.
DEFAULT_TIMEOUT_SECONDS = 5
