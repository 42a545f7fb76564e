import Foundation

/// How a variant's system is started: its rendered config and its command line. The sweep and
/// the pre-flight validation build both here, so what is validated is what runs.
struct SystemLaunch {
    /// The ports a rendered config and command line refer to.
    struct Ports {
        var listen: Int
        var admin: Int
        var upstream: Int
    }

    let system: Experiment.SystemSpec
    let variant: Experiment.Variant

    /// Renders the config template into `directory`, keeping the template's extension (Envoy picks
    /// YAML or JSON by it). Returns nil when the system has no template.
    func renderConfig(ports: Ports, directory: String, tag: String) throws -> String? {
        guard let template = system.config else { return nil }
        guard let text = try? String(contentsOfFile: template, encoding: .utf8) else {
            throw Experiment.SchemaError(path: "system.config", message: "cannot read \(template)")
        }
        var rendered = text.replacingOccurrences(of: "{{LISTEN_PORT}}", with: "\(ports.listen)")
            .replacingOccurrences(of: "{{ADMIN_PORT}}", with: "\(ports.admin)")
            .replacingOccurrences(of: "{{UPSTREAM_PORT}}", with: "\(ports.upstream)")
            .replacingOccurrences(of: "{{WORKDIR}}", with: directory)
        for (key, value) in variant.configVars {
            rendered = rendered.replacingOccurrences(of: "{{\(key)}}", with: value)
        }
        if let left = rendered.range(of: "\\{\\{[A-Za-z0-9_]+\\}\\}", options: .regularExpression) {
            throw Experiment.SchemaError(path: "variants.\(variant.name).config_vars",
                                         message: "\(template) uses \(rendered[left]), which no config_vars entry of this variant sets")
        }
        let ext = (template as NSString).pathExtension
        let path = "\(directory)/\(tag.replacingOccurrences(of: "/", with: "_"))" + (ext.isEmpty ? ".conf" : ".\(ext)")
        try rendered.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The command line that serves (`validate: false`) or only checks the config and flags.
    func commandLine(ballast: String, envoy: String?, config: String?, validate: Bool) -> [String] {
        let extra = system.args + variant.args
        switch system.kind {
        case .server:
            let serve = [ballast, "server", "--port", "0", "--address", "127.0.0.1", "--admin-port", "0"] + extra
            return validate ? serve + ["--check"] : serve
        case .proxy:
            return [ballast, "proxy", "-c", config ?? ""] + extra + (validate ? ["--mode", "validate"] : [])
        case .envoy:
            // --disable-hot-restart: several Envoys (a sweep's, a developer's) must not share the
            // hot-restart shared memory; the sweep starts a fresh one per point anyway.
            return [envoy ?? "envoy", "-c", config ?? "", "--disable-hot-restart"] + extra + (validate ? ["--mode", "validate"] : [])
        case .command:
            let line = system.command.map { $0.replacingOccurrences(of: "{{CONFIG}}", with: config ?? "") } + extra
            guard validate, let program = line.first else { return line }
            // Each peer's own config check, where the peer has one.
            switch (program as NSString).lastPathComponent {
            case "nginx": return [program, "-t"] + line.dropFirst()
            case "haproxy": return [program, "-c"] + line.dropFirst()
            case "envoy": return line + ["--mode", "validate"]
            default: return []
            }
        }
    }
}
