import sys

from cnclip_edu.cli import main

sys.exit(main())
