"""Running a node on this machine's own servers (``make run``) and calling it."""

import warnings

# nameko imports eventlet, whose deprecation notice would start every command's output
warnings.filterwarnings("ignore", r"\s*Eventlet is deprecated")
