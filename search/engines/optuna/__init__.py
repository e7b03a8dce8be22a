"""The Optuna engine: ``engine`` (the ask/tell loop), ``hp`` (keras-tuner's ``hp`` API over an
Optuna trial), ``storage`` (the journal file or a shared database, and their faults) and
``view`` (any study's records as Optuna objects, for plots and callbacks).

Nothing is imported here: ``storage``'s URL checks serve the command line without loading
Optuna.
"""
