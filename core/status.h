// The result of a fallible call: no exceptions on the data path.
#pragma once

#include <string>
#include <utility>

namespace ringmail {

class Status {
 public:
  enum class Code { ok, not_found, already_exists, invalid, io_error, corrupt, no_space };

  Status() = default;
  static Status ok() { return Status(); }
  static Status not_found(std::string m) { return Status(Code::not_found, std::move(m)); }
  static Status already_exists(std::string m) { return Status(Code::already_exists, std::move(m)); }
  static Status invalid(std::string m) { return Status(Code::invalid, std::move(m)); }
  static Status io_error(std::string m) { return Status(Code::io_error, std::move(m)); }
  static Status corrupt(std::string m) { return Status(Code::corrupt, std::move(m)); }
  static Status no_space(std::string m) { return Status(Code::no_space, std::move(m)); }

  bool is_ok() const { return code_ == Code::ok; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::ok;
  std::string message_;
};

}  // namespace ringmail
