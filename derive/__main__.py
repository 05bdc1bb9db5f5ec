import sys

from derive.command_line import main

sys.exit(main())
