//! Live codes and the scan path.
