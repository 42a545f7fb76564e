import HTTP1
import XCTest

final class ASCIITests: XCTestCase {
    func decimal(_ s: String) -> Int? {
        let b = bytes(s)
        return b.withUnsafeBytes { ASCII.parseDecimal($0, 0..<b.count) }
    }

    func testParseDecimal() {
        XCTAssertEqual(decimal("0"), 0)
        XCTAssertEqual(decimal("007"), 7)
        XCTAssertEqual(decimal("1234567890"), 1_234_567_890)
        XCTAssertEqual(decimal("9223372036854775807"), Int.max)
        XCTAssertNil(decimal("9223372036854775808"))
        XCTAssertNil(decimal("100000000000000000000"))
        for bad in ["", " 1", "1 ", "+1", "-1", "1a", "1,2", "١"] {
            XCTAssertNil(decimal(bad), bad)
        }
        // A sub-range of a larger buffer.
        let b = bytes("len=42;")
        XCTAssertEqual(b.withUnsafeBytes { ASCII.parseDecimal($0, 4..<6) }, 42)
    }

    func testCaseInsensitiveComparisonFoldsLettersOnly() {
        let b = bytes("Content-LENGTH|x-^|@[`{")
        b.withUnsafeBytes { p in
            XCTAssertTrue(ASCII.equalsCaseInsensitive(p, 0..<14, "content-length"))
            XCTAssertTrue(ASCII.equalsCaseInsensitive(p, 0..<14, "CONTENT-LENGTH"))
            XCTAssertFalse(ASCII.equalsCaseInsensitive(p, 0..<14, "content-lengt"))
            XCTAssertFalse(ASCII.equalsCaseInsensitive(p, 0..<13, "content-length"))
            XCTAssertTrue(ASCII.equalsCaseInsensitive(p, 15..<18, "X-^"))
            XCTAssertFalse(ASCII.equalsCaseInsensitive(p, 15..<18, "x-~"))
            // '@' '[' '`' '{' sit next to the letters and must not fold into each other.
            XCTAssertFalse(ASCII.equalsCaseInsensitive(p, 19..<21, "`{"))
            XCTAssertTrue(ASCII.equalsCaseInsensitive(p, 19..<23, "@[`{"))
            XCTAssertTrue(ASCII.equalsCaseInsensitive(p, 0..<7, p, 0..<7))
            XCTAssertTrue(ASCII.equalsCaseSensitive(p, 0..<7, "Content"))
            XCTAssertFalse(ASCII.equalsCaseSensitive(p, 0..<7, "content"))
        }
    }

    func testTokenCharactersMatchRFC9110() {
        let tchar = Set(bytes("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        for byte in 0...255 {
            XCTAssertEqual(ASCII.isTokenChar(UInt8(byte)), tchar.contains(UInt8(byte)), "byte \(byte)")
        }
    }

    func testFieldValueBytes() {
        for byte in 0...255 {
            let allowed = byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
            XCTAssertEqual(ASCII.isFieldValueByte(UInt8(byte)), allowed, "byte \(byte)")
        }
    }

    func testHexValue() {
        XCTAssertEqual(ASCII.hexValue(UInt8(ascii: "0")), 0)
        XCTAssertEqual(ASCII.hexValue(UInt8(ascii: "9")), 9)
        XCTAssertEqual(ASCII.hexValue(UInt8(ascii: "a")), 10)
        XCTAssertEqual(ASCII.hexValue(UInt8(ascii: "F")), 15)
        for c in ["g", "G", "/", ":", "@", "`", " "] {
            XCTAssertNil(ASCII.hexValue(UInt8(ascii: Unicode.Scalar(c)!)), c)
        }
    }

    func testListElements() {
        let b = bytes(" a ,, b\t,c d , ,")
        var found: [String] = []
        b.withUnsafeBytes { p in
            var cursor = 0
            while let r = ASCII.nextListElement(p, cursor: &cursor, end: p.count) {
                found.append(text(p, r))
            }
            XCTAssertEqual(cursor, p.count)
            XCTAssertTrue(ASCII.listContainsToken(p, 0..<p.count, "C D"))
            XCTAssertFalse(ASCII.listContainsToken(p, 0..<p.count, "c"))
            XCTAssertEqual(ASCII.trimWhitespace(p, 0..<3), 1..<2)
            XCTAssertEqual(ASCII.trimWhitespace(p, 14..<15), 15..<15)
        }
        XCTAssertEqual(found, ["a", "b", "c d"])
    }
}
