import EventLoop
import Glibc
import HTTP1

/// An `http://` URL for the load generator: numeric host (or `localhost`), port, request target.
public struct LoadURL: Sendable, Equatable {
    /// The URL as given.
    public let text: String
    /// Host as written in the URL (without brackets for IPv6).
    public let host: String
    public let port: Int
    /// Path and query, as sent on the request line (`/` when the URL has no path).
    public let target: String
    /// The Host header value (`host`, or `host:port` when the port is not 80).
    public let hostHeader: String

    public static func == (a: LoadURL, b: LoadURL) -> Bool { a.text == b.text }

    public struct ParseError: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Parses `http://HOST[:PORT][/PATH][?QUERY]`. HOST is an IPv4 address, a bracketed IPv6
    /// address or `localhost` (no DNS). No fragments, no user info, no https.
    public init(_ text: String) throws(ParseError) {
        func fail(_ why: String) -> ParseError { ParseError(description: "bad URL '\(text)': \(why)") }
        guard text.hasPrefix("http://") else {
            throw fail(text.hasPrefix("https://") ? "https is not supported" : "expected http://HOST[:PORT]/PATH")
        }
        let rest = text.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[rest.startIndex..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        guard !authority.isEmpty else { throw fail("no host") }
        guard !authority.contains("@") else { throw fail("user info is not supported") }
        guard !target.contains("#") else { throw fail("fragments are not sent; remove the '#...' part") }
        for byte in target.utf8 where byte <= 0x20 || byte >= 0x7F {
            throw fail("the path and query must be printable ASCII without spaces (percent-encode them)")
        }
        var host: Substring
        var portText: Substring? = nil
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw fail("unclosed '[' in the host") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw fail("unexpected text after ']'") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[authority.startIndex..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        var port = 80
        if let portText {
            guard let p = Int(portText), (1...65535).contains(p) else { throw fail("port must be 1...65535") }
            port = p
        }
        let hostString = String(host)
        let connectHost = hostString == "localhost" ? "127.0.0.1" : hostString
        guard SocketAddress(host: connectHost, port: port) != nil else {
            throw fail("the host must be a numeric IPv4 or IPv6 address or localhost (no DNS lookups)")
        }
        self.text = text
        self.host = hostString
        self.port = port
        self.target = target
        let bracketed = hostString.contains(":") ? "[\(hostString)]" : hostString
        self.hostHeader = port == 80 ? bracketed : "\(bracketed):\(port)"
    }

    /// The address to connect to.
    public var address: SocketAddress {
        SocketAddress(host: host == "localhost" ? "127.0.0.1" : host, port: port)!
    }
}

/// One extra request header (`-H "Name: value"`), validated.
public struct LoadHeader: Sendable, Equatable {
    public let name: String
    public let value: String

    /// Parses `Name: value`. The name must be an HTTP token, the value printable (no CR/LF).
    public init(parsing text: String) throws(LoadURL.ParseError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw LoadURL.ParseError(description: "bad header '\(text)': expected 'Name: value'")
        }
        let name = String(text[text.startIndex..<colon])
        var value = Substring(text[text.index(after: colon)...])
        while value.first == " " || value.first == "\t" { value = value.dropFirst() }
        while value.last == " " || value.last == "\t" { value = value.dropLast() }
        guard !name.isEmpty, name.utf8.allSatisfy(ASCII.isTokenChar) else {
            throw LoadURL.ParseError(description: "bad header '\(text)': the name must be a token (letters, digits, !#$%&'*+-.^_`|~)")
        }
        guard value.utf8.allSatisfy(ASCII.isFieldValueByte) else {
            throw LoadURL.ParseError(description: "bad header '\(text)': control characters in the value")
        }
        let lower = name.lowercased()
        guard lower != "content-length" && lower != "transfer-encoding" else {
            throw LoadURL.ParseError(description: "bad header '\(text)': \(name) is set from -payload/-payload-size")
        }
        self.name = name
        self.value = String(value)
    }
}

/// Everything one `ballast load` run needs, validated (see `LoadCommand` for the flags).
public struct LoadOptions: Sendable {
    public var url: LoadURL
    /// Requests per second over all connections; 0 = as fast as possible (closed loop).
    public var qps: Double = 8
    public var connections = 4
    /// Run length after the warm-up; 0 with `exactly == 0` runs until interrupted.
    public var durationNanos: Int64 = 5_000_000_000
    /// Total requests (`-n`); 0 = use the duration.
    public var exactly = 0
    public var keepAlive = true
    public var headers: [LoadHeader] = []
    /// Request body; a non-nil payload makes the request a POST.
    public var payload: [UInt8]? = nil
    public var contentType = ""
    public var percentiles: [Double] = [50, 75, 90, 99, 99.9]
    /// fortio's histogram bucket resolution in seconds (`-r`).
    public var resolution = 0.001
    public var uniform = false
    public var jitter = false
    public var timeoutNanos: Int64 = 3_000_000_000
    /// Requests started before this much time has passed are not recorded (`-warmup`).
    public var warmupNanos: Int64 = 0
    /// Closed loop: connection k of c opens at k/c of this time after the start (`-ramp`), not
    /// all at once; 0 = all at once.
    public var rampNanos: Int64 = 0
    /// Event-loop threads; 0 = automatic.
    public var threads = 0
    public var io: IOBackendKind = .auto
    public var cpus: [Int] = []
    public var labels = ""
    /// A status code that stops the run (-1: any socket error); 0 = never.
    public var abortOn = 0
    public var allowInitialErrors = false
    public var backend = BackendOptions()
    /// Seed for jitter (deterministic runs).
    public var seed: UInt64 = 0xBA11_A57

    public init(url: LoadURL) {
        self.url = url
    }

    /// Threads to run: the given count, or one per 1,024 connections up to the usable CPUs.
    public var resolvedThreads: Int {
        let wanted = threads > 0 ? threads : min(max(1, (connections + 1023) / 1024), max(1, Self.usableCPUs))
        return max(1, min(wanted, connections))
    }

    static var usableCPUs: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }

    /// fortio's `RequestedQPS`: "max" for 0, else the number.
    public var requestedQPSText: String { qps <= 0 ? "max" : LoadFormat.g(qps, 9) }

    /// fortio's `RequestedDuration`.
    public var requestedDurationText: String {
        if exactly > 0 { return "exactly \(exactly) calls" }
        if durationNanos <= 0 { return "until stop" }
        return GoDuration.format(nanos: durationNanos)
    }
}
