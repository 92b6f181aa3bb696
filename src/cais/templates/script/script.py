"""A small program to put in a container: it greets someone and writes a file.

Try it:  cais build . -t hello:0.1.0
         cais run -e NAME=Ana -v ./output:/data hello:0.1.0
"""

import os
from datetime import datetime, timezone
from pathlib import Path

import humanize

name = os.environ.get("NAME", "world")
greeting = f"Hello, {name}!"
print(greeting)

# A folder mounted with `-v ./output:/data` keeps what the container writes.
output = Path(os.environ.get("OUTPUT_DIR", "/data"))
try:
    output.mkdir(parents=True, exist_ok=True)
    note = output / "greeting.txt"
    note.write_text(f"{greeting} Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.\n")
except PermissionError:
    print(f"Nothing written: mount a folder at {output} to keep a file (-v ./output:{output})")
else:
    print(f"Wrote {note} ({humanize.naturalsize(note.stat().st_size)})")
