/// File helpers shared by the reporters: an atomic whole-file write (temp file in the target's
/// folder, fsync, rename), a whole-file read, and the POSIX pieces they and the JSONL stream
/// share. Every error names the path.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace attnbench {

/// Replaces `path` with `text` atomically: the target is either untouched or complete, and no
/// temp file is left behind. Creates parent folders. Throws error id `io` naming the path.
void write_file_atomic(const std::string& text, const std::filesystem::path& path);

/// Creates the folders above `path` (nothing when it has none). Throws error id `io`.
void create_parent_folders(const std::filesystem::path& path);

/// write(2) until all of `text` is written, retrying on EINTR. Throws error id `io` naming
/// `target`, the file behind `fd`.
void write_fully(int fd, std::string_view text, const std::filesystem::path& target);

/// strerror for `err`, thread-safe.
std::string errno_text(int err);

/// The whole content of `path`. Throws bad_input "cannot read <what> '<path>': <reason>".
std::string read_text_file(const std::filesystem::path& path, const char* what);

}  // namespace attnbench
