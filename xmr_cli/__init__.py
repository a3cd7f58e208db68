"""The xmr command's parts: shared options, output, progress bars and the error table.

``cli.py`` (the ``xmr`` entry point) holds one thin function per command and builds on
these. Together they are the only code that prints or exits. Nothing here imports torch at
module level, so ``xmr --help`` stays fast.
"""
