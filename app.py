"""dermsearch demo: `python app.py [--library PATH] [--backbone KEY] [--host H] [--port P]`.

`demo` is built at import (the Hugging Face Spaces convention); flags are read only when run.
"""

import sys

from demo import build_demo, configure_torch, launch_kwargs, parse_config

config = parse_config(sys.argv[1:] if __name__ == "__main__" else [])
configure_torch(config)
demo = build_demo(config)

if __name__ == "__main__":
    demo.launch(**launch_kwargs(config))
