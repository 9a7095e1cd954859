"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A mistake in the user's input (id, option, file, folder). The message says what to do."""


class DataError(UserError):
    """A dataset is missing, corrupt or cannot be fetched."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, or not in a format we load safely."""


class TrainingDiverged(RuntimeError):
    """Loss or gradients became NaN/inf. Training stopped; the last good checkpoint is kept."""
