"""Names the config accepts, in a module without torch, so ``--help`` can list them cheaply."""

# Names the ``loss.loss`` option of loss/histogram accepts (histae.loss implements each).
LOSS_NAMES = (
    "l1",
    "mae",
    "l2",
    "mse",
    "kl_div",
    "bce",
    "ce",
    "emd",
    "hellinger",
    "chi2",
    "sorted_w1",
)
