"""Logistic regression trained by minibatch SGD on a synthetic data set; reports validation accuracy.

NNI trial code as it is: `import nni` works in a trial under hpoqueue without NNI installed.
"""

import nni
import numpy as np

params = nni.get_next_parameter() or {"lr": 0.1, "l2": 0.0, "batch_size": 32, "epochs": 5}
rng = np.random.default_rng(0)
w_true = rng.normal(size=10)
X = rng.normal(size=(2000, 10))
y = (X @ w_true + rng.normal(scale=2.0, size=2000) > 0).astype(float)
X_train, y_train, X_val, y_val = X[:1500], y[:1500], X[1500:], y[1500:]

w = np.zeros(10)
for _epoch in range(params["epochs"]):
    order = rng.permutation(len(X_train))
    for start in range(0, len(order), params["batch_size"]):
        idx = order[start:start + params["batch_size"]]
        p = 1 / (1 + np.exp(-X_train[idx] @ w))
        grad = X_train[idx].T @ (p - y_train[idx]) / len(idx) + params["l2"] * w
        w -= params["lr"] * grad
    accuracy = float(((X_val @ w > 0) == y_val).mean())
    nni.report_intermediate_result(accuracy)
nni.report_final_result(accuracy)
