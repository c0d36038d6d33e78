import os
os.environ.setdefault("SAENS_PROFILE", "ci")
