"""Call recordings: the recorder, the files, the catalogue queries, mp3 conversion, what
follows a catalogued call (ticket, STT job), voice messages."""
