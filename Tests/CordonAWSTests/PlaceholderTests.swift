import XCTest
@testable import CordonAWS
