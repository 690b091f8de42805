"""The sentikit demo: `python app.py` serves the shipped English (SST-2) and Chinese bundles on http://127.0.0.1:7860.

`python app.py --help` lists the options; the page itself is built by `sentikit.app.layout` and `sentikit.app.page`.
"""

from sentikit.app.layout import main

if __name__ == "__main__":
    main()
