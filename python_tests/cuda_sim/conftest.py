import sys
from pathlib import Path

# The helpers beside the tests (_build, _cases) import as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
