"""Object storage below the hooks: URIs (:mod:`.uri`) and atomic write streams (:mod:`.streams`)."""
