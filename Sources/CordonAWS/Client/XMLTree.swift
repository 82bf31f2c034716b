import Foundation

#if canImport(FoundationXML)
import FoundationXML
#endif

/// A parsed XML element: local name (namespace prefix dropped), text and children.
public struct XMLTree: Sendable, Equatable {
    public var name: String
    public var text: String
    public var children: [XMLTree]

    public init(name: String, text: String = "", children: [XMLTree] = []) {
        self.name = name
        self.text = text
        self.children = children
    }

    /// The first child with this name.
    public func child(_ name: String) -> XMLTree? { children.first { $0.name == name } }

    /// Every child with this name.
    public func children(_ name: String) -> [XMLTree] { children.filter { $0.name == name } }

    /// Follows a path of child names.
    public func at(_ path: String...) -> XMLTree? {
        var node: XMLTree? = self
        for name in path { node = node?.child(name) }
        return node
    }

    /// The trimmed text of the child at the path, or nil when absent.
    public func string(_ path: String...) -> String? {
        var node: XMLTree? = self
        for name in path { node = node?.child(name) }
        return node.map { $0.text.trimmingCharacters(in: .whitespacesAndNewlines) }
    }

    /// The text of the child at the path, or nil when absent or empty.
    public func nonEmpty(_ path: String...) -> String? {
        var node: XMLTree? = self
        for name in path { node = node?.child(name) }
        guard let t = node?.text.trimmingCharacters(in: .whitespacesAndNewlines), !t.isEmpty else { return nil }
        return t
    }

    public func int(_ path: String...) -> Int? {
        var node: XMLTree? = self
        for name in path { node = node?.child(name) }
        return node.flatMap { Int($0.text.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    public func bool(_ path: String...) -> Bool? {
        var node: XMLTree? = self
        for name in path { node = node?.child(name) }
        switch node?.text.trimmingCharacters(in: .whitespacesAndNewlines).lowercased() {
        case "true": return true
        case "false": return false
        default: return nil
        }
    }

    /// The `item` (EC2) or `member` (IAM, SNS) children of the child at the path.
    public func items(_ path: String...) -> [XMLTree] {
        var node: XMLTree? = self
        for name in path { node = node?.child(name) }
        return node?.children.filter { $0.name == "item" || $0.name == "member" } ?? []
    }

    /// The first element with this name, depth first.
    public func descendant(_ name: String) -> XMLTree? {
        if self.name == name { return self }
        for c in children {
            if let found = c.descendant(name) { return found }
        }
        return nil
    }

    /// Parses a document; nil when it is not well-formed XML. External entities are not resolved.
    public static func parse(_ bytes: [UInt8]) -> XMLTree? {
        let parser = XMLParser(data: Data(bytes))
        parser.shouldResolveExternalEntities = false
        parser.shouldProcessNamespaces = false
        let builder = Builder()
        parser.delegate = builder
        guard parser.parse(), !builder.failed, let root = builder.root else { return nil }
        return root
    }

    private final class Builder: NSObject, XMLParserDelegate {
        var stack: [XMLTree] = []
        var root: XMLTree?
        var failed = false
        static let maxDepth = 64

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            if stack.count >= Self.maxDepth {
                failed = true
                parser.abortParsing()
                return
            }
            let local = elementName.split(separator: ":").last.map(String.init) ?? elementName
            stack.append(XMLTree(name: local))
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].text += string
        }

        func parser(_ parser: XMLParser, foundCDATA CDATABlock: Data) {
            guard !stack.isEmpty else { return }
            stack[stack.count - 1].text += String(decoding: CDATABlock, as: UTF8.self)
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?, qualifiedName: String?) {
            guard let done = stack.popLast() else { return }
            if stack.isEmpty {
                root = done
            } else {
                stack[stack.count - 1].children.append(done)
            }
        }

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { failed = true }
    }
}

/// Escapes text for an XML element body.
package func xmlEscape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default: out.append(c)
        }
    }
    return out
}
