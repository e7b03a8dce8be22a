"""The keras-tuner engine: ``engine`` (the tuner whose trials run our trainer), ``oracle``
(keras-tuner's oracles as the study's storage), ``distribute`` (the chief serving the oracle
to worker processes, and their client) and ``records`` (keras-tuner's trials as trial
records).
"""
