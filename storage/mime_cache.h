// The MIME cache record: a compact byte form of a MimeInfo, stored with the mailbox index so that
// FETCH renders ENVELOPE and BODYSTRUCTURE and slices BODY[section] without parsing the message
// again. Versioned and checksummed (XXH3-64); the layout is in storage/FORMAT.md, "MIME cache
// record".
//
// A record is never trusted: decoding checks the checksum, then every count, string, offset and
// length against the record and the message size, and the tree's shape, and reports anything
// wrong as Status::corrupt (the caller can parse the message again). What decodes is what the
// parser could have produced: ranges within the message, each part within its parent, kinds
// that match their types, so the renderer's output is always well-formed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "storage/mime_parser.h"

namespace ringmail {

constexpr uint8_t kMimeCacheVersion = 1;

// Appends the record of `info` to *out.
// REQUIRES: info is a parse result (or a decoded record).
void encode_mime_cache(const MimeInfo& info, std::string* out);

// Replaces *out with the record's contents. `message_bytes` is the size of the stored message the
// record describes. Status::corrupt for anything malformed, *out then unspecified.
Status decode_mime_cache(std::string_view record, uint32_t message_bytes, MimeInfo* out);

}  // namespace ringmail
