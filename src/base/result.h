#pragma once
// Result<T, E>: a small std::expected stand-in (g++ 12 has no <expected>).
// No exceptions anywhere in src/: failures travel as values.
#include <cerrno>
#include <cstring>
#include <new>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace moat {

/// An errno value from a failed system call (Envoy's IoCallResult, reduced).
struct Errno {
  int value = 0;
  static Errno last() noexcept { return Errno{errno}; }
  [[nodiscard]] bool would_block() const noexcept { return value == EAGAIN || value == EWOULDBLOCK; }
  [[nodiscard]] const char* message() const noexcept { return std::strerror(value); }
  friend bool operator==(Errno, Errno) = default;
};

template <class E>
struct Unexpected {
  E error;
};
template <class E>
Unexpected<std::decay_t<E>> unexpected(E&& e) {
  return Unexpected<std::decay_t<E>>{std::forward<E>(e)};
}

/// Either a value or an error. Accessing the wrong alternative is a programming error.
template <class T, class E = Errno>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  template <class G>
  Result(Unexpected<G> e) : v_(std::in_place_index<1>, E(std::move(e.error))) {}  // NOLINT

  [[nodiscard]] bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const E& error() const { return std::get<1>(v_); }
  T value_or(T other) const { return has_value() ? value() : other; }

 private:
  std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  template <class G>
  Result(Unexpected<G> e) : e_(E(std::move(e.error))) {}  // NOLINT
  [[nodiscard]] bool has_value() const noexcept { return !e_.has_value(); }
  explicit operator bool() const noexcept { return has_value(); }
  const E& error() const { return *e_; }

 private:
  std::optional<E> e_;
};

using Status = Result<void, Errno>;

/// Shorthand for a failed syscall: `return sys_error();`
inline Unexpected<Errno> sys_error() noexcept { return Unexpected<Errno>{Errno::last()}; }

}  // namespace moat
