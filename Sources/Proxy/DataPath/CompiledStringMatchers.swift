/// A list of string matchers (exact, prefix, suffix, contains, `ignore_case`, `safe_regex`)
/// compiled once, any of which may match: the origins of cors and csrf policies.
struct CompiledStringMatchers: Sendable {
    private let tests: [(test: CompiledHeaderMatcher.Test, ignoreCase: Bool)]

    /// `filter` names the owner in the message of the (impossible) compile failure: the config
    /// parser compiled every safe_regex with the same RE2 already.
    init(_ configs: [StringMatcherConfig], filter: String) {
        tests = configs.map { m in
            guard let compiled = try? CompiledRoute.compile(.string(m), filter) else {
                preconditionFailure("\(filter) string matcher \(m) did not compile")
            }
            return compiled
        }
    }

    /// Some matcher matches `value`.
    func matchesAny(_ value: UnsafeRawBufferPointer) -> Bool {
        for t in tests where CompiledRoute.test(t.test, value, ignoreCase: t.ignoreCase) { return true }
        return false
    }
}
