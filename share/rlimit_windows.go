package share

import "log/slog"

// raiseFileLimit: Windows has no descriptor limit of this kind (handles
// are bounded by memory), so there is nothing to raise.
func raiseFileLimit(log *slog.Logger) {}
